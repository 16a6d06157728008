"""``prunekit bench --reevaluate``: an attack added to a finished grid is evaluated on the
finished runs' final models without re-running any training stage: every file under runs/ and
cache/ keeps its bytes and mtime, new rows appear for the new run ids; a certifier added to the
eval section is evaluated too."""
from __future__ import annotations

import csv
import json
import hashlib
from pathlib import Path

import yaml

from prunekit.cli import main

GRID = {
    "name": "reeval",
    "base": {"data": {"dataset": "synthetic", "input_shape": [3, 16, 16], "size": 32,
                      "batch_size": 16},
             "model": {"name": "vgg-small", "width": 0.25}, "loss": {"name": "pgd_at", "steps": 1},
             "pretrain": {"epochs": 1}, "prune": {"epochs": 1}, "finetune": {"epochs": 1},
             "eval": {"attacks": ["pgd-2-1"], "n_examples": 16}},
    "axes": {"method": ["d2bc", "magnitude"], "sparsity": [0.5]},
}


def _files(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for sub in ("runs", "cache") for p in sorted((root / sub).rglob("*")) if p.is_file()}


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_added_attack_reevaluates_without_training(tmp_path: Path) -> None:
    out = tmp_path / "out"
    g1 = tmp_path / "g1.yaml"
    g1.write_text(yaml.safe_dump(GRID))
    assert main(["bench", str(g1), "--out", str(out), "--no-table"]) == 0
    first = _rows(out)
    assert [r["status"] for r in first] == ["ok", "ok"]
    before = _files(out)
    assert any(k.endswith("ckpt.pt") for k in before) and any(k.endswith("model.pt") for k in before)

    grid2 = {**GRID, "base": {**GRID["base"], "eval": {"attacks": ["pgd-2-1", "pgd-3-1"],
                                                       "n_examples": 16, "certify": ["ibp"]}}}
    g2 = tmp_path / "g2.yaml"
    g2.write_text(yaml.safe_dump(grid2))
    assert main(["bench", str(g2), "--out", str(out), "--reevaluate"]) == 0
    after = _files(out)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing rewritten
    new = set(after) - set(before)
    assert new and all(Path(k).name in ("reevaluated_from.json", "eval_state.pt") for k in new)
    rows = _rows(out)
    assert len(rows) == 4
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    for method, (old, again) in by_method.items():
        assert again["attacks"] == "pgd-2-1;pgd-3-1" and again["run_id"] != old["run_id"]
        assert again["status"] == "ok" and again["train_s"] == old["train_s"]
        assert again["clean_acc"] == old["clean_acc"]  # the same model on the same images
        assert again["params"] == old["params"] and again["macs"] == old["macs"]
        assert again["pretrain_hash"] == old["pretrain_hash"]
        # eval.certify is honoured (it was dropped before)
        assert "ibp" in json.loads(again["certified_acc"]) and not json.loads(old["certified_acc"] or "{}")
    # a second --reevaluate has nothing left to do
    assert main(["bench", str(g2), "--out", str(out), "--reevaluate"]) == 0
    assert len(_rows(out)) == 4
