"""Provenance of plug-ins (issue 24): every row of a grid names the distribution and version of
each component it used (``plugins`` column, schema v3), and an attack installed outside the
repository is named by its own distribution."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prunekit import ATTACKS
from prunekit._version import __version__
from prunekit.bench.runner import run_grid
from prunekit.config import RunConfig
from prunekit.plugins import distribution_of, run_plugins
from prunekit.registry import PRUNERS

from plugin_util import install_example
from test_bench_runner import GRID, N_RUNS, read
from test_bench_fakes import fake_run

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mifgsm_attack"


def test_every_grid_row_names_its_plugins(tmp_path: Path) -> None:
    run_grid(GRID, tmp_path, run_fn=fake_run)
    rows = read(tmp_path / "results.csv")
    assert len(rows) == N_RUNS
    for r in rows:
        plugins = json.loads(r["plugins"])
        assert set(plugins) == {"model", "dataset", "loss", "pruner", "attacks"}
        assert plugins["pruner"].startswith(f"{r['method']}=prunekit ")
        assert plugins["loss"].startswith(f"{r['loss']}=prunekit ")
        assert [a.split("=")[0] for a in plugins["attacks"]] == r["attacks"].split(";")
        assert all("=prunekit " in v for v in [plugins["model"], *plugins["attacks"]])


def test_builtin_baselines_and_foreign_modules() -> None:
    assert distribution_of(PRUNERS.get("hydra")).split()[0] == "prunekit"   # baselines/
    assert distribution_of(json).endswith("(not installed)")  # no distribution provides it


def test_outside_plugin_named_by_its_distribution(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    install_example(monkeypatch, tmp_path / "site", EXAMPLE, "prunekit-mifgsm",
                    {"prunekit.attacks": {"mi-fgsm": "prunekit_mifgsm:MIFGSM"}}, ATTACKS)
    try:
        cfg = RunConfig.from_dict({"method": "dense", "sparsity": 0.0,
                                   "eval": {"attacks": ["pgd-2-1", "mi-fgsm-5"]}})
        got = run_plugins(cfg)["attacks"]
        assert got == [f"pgd-2-1=prunekit {got[0].split()[-1]}", "mi-fgsm-5=prunekit-mifgsm 0.1.0"]
    finally:
        sys.modules.pop("prunekit_mifgsm", None)
