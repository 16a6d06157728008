"""The real pipeline through the bench harness: benchmarks/grids/smoke.yaml.

Both run in the default suite (measured on a quiet 2-core CPU: 1.4 s for the slice, 7 s for the
whole grid): a two-method slice of the smoke grid (one shared pretraining, a channel and a weight
pruner) and the whole grid (4 methods x TRADES, MART) through `prunekit bench`. The harness logic itself is covered fast,
with a fake run function, in test_bench_runner.py.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from prunekit.bench.cells import method_warnings
from prunekit.bench.grid import load_grid
from prunekit.bench.runner import run_grid
from prunekit.bench.store import SCHEMA
from prunekit.cli import main

SMOKE = Path(__file__).resolve().parents[1] / "benchmarks" / "grids" / "smoke.yaml"
OPTIONAL = {"fold", "error", "aa_acc"}  # the smoke grid runs no AutoAttack


def read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def check_rows(rows: list[dict]) -> None:
    for r in rows:
        assert r["status"] == "ok", r["error"]
        for col in SCHEMA:
            if col not in OPTIONAL:
                assert r[col] != "", (r["run_id"], col)
        for col in ("clean_acc", "pgd_acc", "apgd_acc", "worst_acc"):
            assert 0.0 <= float(r[col]) <= 1.0
        assert float(r["worst_acc"]) <= min(float(r["pgd_acc"]), float(r["apgd_acc"])) + 1e-9
        assert float(r["pgd_acc"]) <= float(r["clean_acc"]) + 1e-9
        assert r["aa_acc"] == ""                    # not in the smoke grid's attacks
        assert r["device"] == "cpu" and r["attacks"] == "pgd-5-1;apgd-ce"
        assert math.isclose(float(r["eps"]), 8 / 255, rel_tol=1e-6)


def test_smoke_slice_end_to_end(tmp_path: Path) -> None:
    grid = load_grid(SMOKE)
    grid.axes = {"loss.name": ["trades"], "method": ["d2bc", "admm"], "sparsity": [0.5]}
    s = run_grid(grid, tmp_path)
    assert not s.ran_failed and len(s.ran_ok) == 2
    rows = read(tmp_path / "results.csv")
    check_rows(rows)
    by = {r["method"]: r for r in rows}
    assert by["d2bc"]["granularity"] == "channel" and by["admm"]["granularity"] == "weight"
    assert float(by["d2bc"]["macs_reduction"]) > 0.3          # channels physically removed
    assert abs(float(by["admm"]["weight_sparsity"]) - 0.5) < 0.05
    assert by["d2bc"]["pretrain_hash"] == by["admm"]["pretrain_hash"]
    assert len(list((tmp_path / "cache" / "pretrain").iterdir())) == 1   # pretrained once
    # a re-run finds everything finished and trains nothing
    s = run_grid(grid, tmp_path)
    assert not s.ran_ok and len(s.skipped) == 2


def test_smoke_grid_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", str(SMOKE), "--out", str(tmp_path)]) == 0
    rows = read(tmp_path / "results.csv")
    assert len(rows) == 8 == len({r["run_id"] for r in rows})
    check_rows(rows)
    out = capsys.readouterr().out
    for r in rows:   # a method whose summary says it did not converge is marked
        warned = method_warnings(r["method_summary"])
        assert f"| {r['loss']} | {r['method']}{' †' if warned else ''} |" in out
    assert main(["report", str(tmp_path / "results.csv"), "--plots", str(tmp_path / "p")]) == 0
    assert sorted(p.name for p in (tmp_path / "p").glob("*.png")) == [
        "acc_vs_sparsity_apgd-ce.png", "acc_vs_sparsity_clean.png", "acc_vs_sparsity_pgd-5-1.png",
        "acc_vs_sparsity_worst.png", "pareto_macs.png", "pareto_params.png"]
