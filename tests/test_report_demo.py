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
    table = out[out.index("| loss | method | target | MACs |"):]
    assert "| trades | dense | 0% | 1M | 0.0 | 100k |" in table
    assert "| trades | d2bc | 90% macs | 100k | 90.0 | 20k |" in table
    assert "50.0 [43.1, 56.9]" in table                      # dense: Wilson over 200 images
    assert "paired comparison against dense" in table
    assert "| trades | hydra | 90% weights | 1M | 0.0 | 12k | 88.0 |" in table   # non-zero
    reading = table[table.index("Reading (computed from these results"):]
    assert "same cost = MACs and non-zero params both within 5 %" in reading
    # masked models keep the dense MACs but not its parameters: a trade-off, not like for like
    assert "same cost as dense:" not in reading
    assert ("hydra 90% at the same MACs (1.00×) but 0.12× non-zero params: -15.0 points"
            in reading)
    assert "admm 90% at the same MACs (1.00×) but 0.12× non-zero params: -1.0 points" in reading
    assert ("in short: no method has the same MACs and non-zero params as dense; significant "
            "at another cost: d2bc 90% (-15.0; 0.10× MACs, 0.20× non-zero params), hydra 90% "
            "(-15.0; the same MACs (1.00×) but 0.12× non-zero params); noise at another cost: "
            "admm 90%." in reading)
    assert ("same cost as each other: admm 90%, hydra 90% (1.00× MACs, 0.12× non-zero params; "
            "`--versus admm` tests them pairwise)." in reading)
