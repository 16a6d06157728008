"""End to end: HYDRA pruning under the CROWN-IBP and smoothing objectives through the grid
runner, the certified accuracies in the results CSV (``certified_acc``) and the per-example
file."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from prunekit.bench.grid import load_grid
from prunekit.bench.runner import run_grid
from prunekit.cli import main
from prunekit.eval.examples import read_examples

SMOKE = Path(__file__).resolve().parents[1] / "benchmarks" / "grids" / "smoke.yaml"


@pytest.mark.parametrize("loss, certify", [
    ("crown-ibp", ["ibp", "crown-ibp"]),
    pytest.param("smooth", [{"name": "smoothing", "sigma": 0.25, "n0": 10, "n": 40, "radii": [0.0, 0.1],
                 "batch": 40}], marks=pytest.mark.slow)])
def test_hydra_under_certified_objective(tmp_path: Path, loss: str, certify: list,
                                         capsys: pytest.CaptureFixture) -> None:
    grid = load_grid(SMOKE)
    grid.base.update(amp=False, channels_last=False)
    grid.base["loss"] = {"steps": 0, **({"ramp_epochs": 1.0} if loss == "crown-ibp" else {})}
    grid.base["eval"] = {"attacks": ["pgd-5-1"], "n_examples": 8, "batch_size": 8,
                         "certify": certify}
    grid.axes = {"loss.name": [loss], "method": ["dense", "hydra"], "sparsity": [0.5]}
    s = run_grid(grid, tmp_path)
    assert not s.ran_failed and len(s.ran_ok) == 2
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    row = rows["hydra"]
    cert = json.loads(row["certified_acc"])
    names = {"crown-ibp": {"ibp", "crown-ibp"}, "smooth": {"smooth0.25@0", "smooth0.25@0.1"}}
    assert set(cert) == names[loss] and all(0.0 <= v <= 1.0 for v in cert.values())
    if loss == "crown-ibp":
        assert cert["ibp"] <= cert["crown-ibp"] <= float(row["pgd_acc"])
    ex = read_examples(tmp_path / row["examples"])
    assert set(ex.cert_names) == names[loss]
    assert abs(float(row["weight_sparsity"]) - 0.5) < 0.05
    # the report: certified metrics with intervals and the paired comparison to dense
    metric = "certified:" + sorted(names[loss])[0]
    assert main(["report", str(tmp_path / "results.csv"), "--versus", "dense",
                 "--metrics", f"clean,worst,{metric}"]) == 0
    out = capsys.readouterr().out
    assert f"| Δ {metric} (points) | p {metric} (Holm) |" in out, out   # paired McNemar
    assert "never part of the worst case" in out
