"""`params_reduction` of real runs: the runner writes 1 - non-zero params(final) / params(dense)
for dense, a weight-masked and a compacted channel model (a tiny real grid, ~10 s), and the
report then has every model's cost on the parameter axis."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from prunekit.bench.report import report
from prunekit.bench.runner import run_grid
from prunekit.checkpoint import load_model
from prunekit.pruning import prunable_layers

GRID = {
    "name": "params",
    "base": {"device": "cpu",
             "data": {"dataset": "synthetic", "train_subset": 32, "batch_size": 32},
             "model": {"name": "vgg-small", "width": 0.25},
             "loss": {"name": "trades", "steps": 1},
             "pretrain": {"epochs": 1, "lr": 0.05, "schedule": "constant"},
             "prune": {"epochs": 1, "lr": 0.01, "schedule": "constant"},
             "finetune": {"epochs": 1, "lr": 0.01, "schedule": "constant"},
             "eval": {"attacks": ["pgd-5-1"], "n_examples": 32, "batch_size": 32}},
    "axes": {"method": ["dense", "magnitude", "random-channel"], "sparsity": [0.5]},
    "rules": [{"where": {"method": "dense"}, "set": {"sparsity": 0.0}}],
    "bench": {"table": False},
}


def _nonzero_params(model: torch.nn.Module) -> int:
    """Independent count: every parameter, minus the zeros of the prunable layers' effective
    (masked) weights."""
    total = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        zeros = sum(int((m.weight == 0).sum()) for m in prunable_layers(model).values())
    return total - zeros


def test_real_runs_write_params_reduction(tmp_path: Path) -> None:
    s = run_grid(GRID, tmp_path)
    assert not s.ran_failed
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    models = {m: load_model(tmp_path / "runs" / r["run_id"] / "model.pt")
              for m, r in rows.items()}
    dense_params = int(rows["dense"]["params"])
    assert dense_params == sum(p.numel() for p in models["dense"].parameters())
    for m, r in rows.items():
        assert r["params_reduction"] != "", m
        expect = 1 - _nonzero_params(models[m]) / dense_params
        assert float(r["params_reduction"]) == pytest.approx(expect), m
    assert float(rows["dense"]["params_reduction"]) == 0.0
    # masked: all parameters stored, half the prunable weights zero -> a real reduction
    mag = rows["magnitude"]
    assert int(mag["params"]) == dense_params and float(mag["macs_reduction"]) == 0.0
    prunable = sum(m.weight.numel() for m in prunable_layers(models["dense"]).values())
    assert float(mag["params_reduction"]) == pytest.approx(0.5 * prunable / dense_params)
    # compacted: the smaller model's own parameter count
    rc = rows["random-channel"]
    assert float(rc["params_reduction"]) == pytest.approx(1 - int(rc["params"]) / dense_params)
    # the report places every model on the parameter axis
    rep = report(tmp_path / "results.csv")
    t = next(v for k, v in rep.tables.items() if k.startswith("accuracy:"))
    assert "–" not in set(t["params red. %"])

