"""The demo's final printout (`make demo` = `prunekit bench benchmarks/grids/demo.yaml`): the
table with intervals, MACs and parameters, then the reading computed from the results -- here
on the real demo grid with a fake run function of known per-example flags."""
from __future__ import annotations

from pathlib import Path

import pytest

from prunekit.bench.runner import RUN_FN_ENV
from prunekit.cli import main

DEMO = Path(__file__).resolve().parents[1] / "benchmarks" / "grids" / "demo.yaml"


def test_demo_prints_intervals_costs_and_a_computed_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(RUN_FN_ENV, "report_fixtures:demo_run")
    assert main(["bench", str(DEMO), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("| loss | method | sparsity | MACs |"):]
    assert "| trades | dense | 0% | 1M | 0.0 | 100k |" in table
    assert "| trades | d2bc | 90% macs | 100k | 90.0 | 20k |" in table
    assert "50.0 [43.1, 56.9]" in table                      # dense: Wilson over 200 images
    assert "paired comparison against dense" in table
    reading = table[table.index("Reading (computed from these results"):]
    assert "admm 90% at the same MACs" in reading and "hydra 90% at the same MACs" in reading
    assert "-15.0 points" in reading and "-1.0 points" in reading
    assert ("in short: at the same cost, hydra 90% (-15.0) differs significantly from dense; "
            "noise at the same cost: admm 90%; significant at another cost: d2bc 90% (-15.0)."
            in reading)
