"""``method: lrnas`` through the run config, the pipeline and the bench runner: validation
before any training, search -> train from scratch -> evaluate -> one CSV row with the genotype,
and a run killed mid-search resuming to the same genotype and the same trained weights."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from prunekit import checkpoint as ckpt
from prunekit.bench.runner import run_grid
from prunekit.bench.store import ResultsStore
from prunekit.config import ConfigError, RunConfig
from prunekit.search import LRNAS
from prunekit.train import run_pipeline

TINY = {k: v for k, v in LRNAS.contract_hparams.items()}
CFG: dict[str, Any] = {
    "device": "cpu", "seed": 0,
    "data": {"dataset": "synthetic", "train_subset": 48, "batch_size": 16,
             "input_shape": [1, 8, 8], "num_classes": 3},
    "model": {"name": "darts"},
    "loss": {"name": "pgd_at_normal", "steps": 2},
    "method": "lrnas",
    "lrnas": {**TINY, "finetune": {"epochs": 1, "lr": 0.05}},
    "eval": {"attacks": ["pgd-5-1"], "n_examples": 16, "batch_size": 16},
}


def _cfg(**over: Any) -> RunConfig:
    d = copy.deepcopy(CFG)
    for k, v in over.items():
        d[k] = v
    return RunConfig.from_dict(d)


@pytest.mark.parametrize("over, needle", [
    ({"model": {"name": "vgg-small"}}, "model.name: darts"),
    ({"sparsity": 0.5}, "sparsity is not used"),
    ({"lrnas": {**TINY, "budget": -5}}, "budget"),
    ({"lrnas": {**TINY, "prune": {"epochs": 3}}}, "no prune stage"),
    ({"lrnas": {**TINY, "warmup": 3}}, "warmup"),
    ({"model": {"name": "darts", "C": 16}}, "model options"),
    ({"method": "lrnass"}, "searchers: lrnas"),
])
def test_bad_lrnas_configs_are_one_line_errors(over: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _cfg(**over)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_budget_below_the_smallest_network_fails_before_training(tmp_path: Path) -> None:
    cfg = _cfg(lrnas={**TINY, "budget": 10})
    with pytest.raises(ConfigError, match="below the smallest possible network"):
        run_pipeline(cfg, tmp_path)
    assert not (tmp_path / "search").exists() and not (tmp_path / "train").exists()


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    out = tmp_path_factory.mktemp("bench")
    grid = {"name": "lrnas-tiny", "base": CFG}
    summary = run_grid(grid, out)
    assert summary.ran_ok, (out / "runs").glob("*/error.log")
    (row,) = ResultsStore(out / "results.csv").rows()
    return out, row


def test_one_row_with_the_genotype(bench) -> None:
    out, row = bench
    assert row["status"] == "ok", row["error"]
    assert row["method"] == "lrnas" and row["granularity"] == "architecture"
    assert row["model"] == "darts" and row["sparsity_target"] == "params"
    assert row["weight_sparsity"] == "" and row["macs_reduction"] == ""
    summary = json.loads(row["method_summary"])
    assert set(summary["genotype"]) == {"normal", "normal_concat", "reduce", "reduce_concat"}
    assert summary["budget"] == TINY["budget"] and summary["params"] <= TINY["budget"]
    assert int(row["params"]) == summary["params"] and int(row["macs"]) > 0
    assert row["clean_acc"] != "" and row["examples"]


def test_saved_model_is_the_found_network(bench) -> None:
    out, row = bench
    model = ckpt.load_model(out / "runs" / row["run_id"] / "model.pt")
    assert model.genotype.to_dict() == json.loads(row["method_summary"])["genotype"]
    info = json.loads((out / "runs" / row["run_id"] / "run.json").read_text())
    assert set(info["records"]) == {"pretrain", "search", "train"}
    assert info["records"]["pretrain"]["skipped"]


def test_killed_mid_search_resumes_to_the_same_run(bench, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out, row = bench
    reference = ckpt.load_model(out / "runs" / row["run_id"] / "model.pt").state_dict()
    cfg = _cfg()
    real = LRNAS.epoch

    def crash(self, *args: Any, **kw: Any):
        if args[6] == 1:  # the epoch index: die inside the second search epoch
            raise RuntimeError("killed")
        return real(self, *args, **kw)

    monkeypatch.setattr(LRNAS, "epoch", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run_pipeline(cfg, tmp_path)
    assert (tmp_path / "search" / "ckpt.pt").exists()
    monkeypatch.setattr(LRNAS, "epoch", real)
    res = run_pipeline(cfg, tmp_path)
    assert res.summary["genotype"] == json.loads(row["method_summary"])["genotype"]
    got = res.model.state_dict()
    assert list(got) == list(reference)
    assert all(torch.equal(got[k].cpu(), reference[k]) for k in got)


def test_report_renders_the_lrnas_row(bench) -> None:
    from prunekit.bench.report import report

    out, _ = bench
    rep = report(out / "results.csv", n_resamples=99)
    assert rep.n_ok == 1 and "LRNAS" in rep.text
