"""The docs/adding-a-pruner.md example: an outside package (examples/l1_pruner) registering a
pruner through the ``prunekit.pruners`` entry-point group is discovered by ``PRUNERS``, passes
the pruner contract checks and runs through the pipeline.

Installation is simulated the way ``importlib.metadata`` sees an installed distribution: a
``*.dist-info`` folder with ``entry_points.txt`` (generated from the example's pyproject.toml) on
``sys.path``, plus the example folder on ``sys.path`` -- no pip, no side effects on the venv.
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

from plugin_util import build_wheel, install_example, passed, run_tests
from prunekit import DATASETS, PRUNERS
from prunekit.config import RunConfig


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "l1_pruner"


def _entry_points() -> dict[str, str]:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    return meta["project"]["entry-points"]["prunekit.pruners"]


@pytest.fixture
def l1_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """'Install' the example: dist-info on sys.path, then let PRUNERS rescan entry points (what
    a fresh process does on first use). Everything is undone after the test."""
    yield install_example(monkeypatch, tmp_path / "site", EXAMPLE, "prunekit-l1-pruner",
                          {"prunekit.pruners": _entry_points()}, PRUNERS)
    sys.modules.pop("l1_pruner", None)


def test_example_declares_one_entry_point() -> None:
    assert _entry_points() == {"l1-filter": "l1_pruner:L1Filter"}


def test_discovered_by_entry_point(l1_plugin: Any) -> None:
    assert "l1-filter" in PRUNERS.names()
    cls = PRUNERS.get("l1-filter")
    assert cls.__module__ == "l1_pruner" and cls.registry_name == "l1-filter"
    for builtin in ("dense", "hydra", "hydra-channel", "admm", "admm-filter"):
        assert builtin in PRUNERS   # the baselines arrive through the same group


def test_contract_checks_pick_it_up(l1_plugin: Any) -> None:
    """The registry-driven contract tests, run in a fresh process that sees the 'installed'
    plug-in (PYTHONPATH = the dist-info folder + the example), select and pass ``l1-filter``."""
    contract = Path(__file__).resolve().parent / "test_pruner_contract.py"
    if not contract.exists():
        pytest.skip("tests/test_pruner_contract.py not present")
    out = run_tests(contract, "l1-filter", [l1_plugin, EXAMPLE])
    assert passed(out) >= 4, out[-2000:]   # each contract test ran


def test_l1_filter_keeps_largest_filters(l1_plugin: Any) -> None:
    from prunekit import MODELS

    torch.manual_seed(0)
    model = MODELS.build("vgg-small", num_classes=4, in_channels=1, width=0.25)
    x = torch.rand(2, 1, 12, 12)
    p = PRUNERS.build("l1-filter", sparsity=0.5)
    p.attach(model, x)
    for g, keep in zip(p.groups, p.keep_masks()):
        if len(g.convs) == 1 and keep.sum() < g.size:      # plain conv: top L1 filters kept
            l1 = model.get_submodule(g.convs[0]).weight.detach().abs().flatten(1).sum(1)
            assert l1[keep].min() >= l1[~keep].max()
    assert abs(p.macs_reduction() - 0.5) < 0.05
    model.eval()
    masked = model(x)
    small = p.finalize(model)
    torch.testing.assert_close(small(x), masked, atol=1e-5, rtol=1e-4)


def _synth(**kw: Any) -> Any:
    from prunekit.data.synthetic import synthetic

    return synthetic(input_shape=(1, 12, 12), num_classes=4, size=48, **kw)


def test_tiny_harness_run(l1_plugin: Any, tmp_path: Path) -> None:
    from prunekit.pruning.accounting import measure
    from prunekit.train import run_pipeline

    if "_plugin_synth" not in DATASETS:
        DATASETS.add("_plugin_synth", _synth)
    cfg = RunConfig.from_dict({
        "name": "plugin", "seed": 0, "device": "cpu",
        "data": {"dataset": "_plugin_synth", "batch_size": 16},
        "model": {"name": "vgg-small", "width": 0.25},
        "loss": {"name": "trades", "steps": 1},
        "pretrain": {"epochs": 1, "lr": 0.05},
        "method": "l1-filter", "sparsity": 0.5,
        "prune": {"epochs": 1, "lr": 0.01},
        "finetune": {"epochs": 1, "lr": 0.01},
        "eval": {"attacks": ["pgd-2-1"], "n_examples": 8},
    })
    res = run_pipeline(cfg, tmp_path / "run", progress=False)
    assert not res.records["prune"].skipped and res.records["finetune"].epochs == 1
    m = measure(res.model, res.example_inputs, res.dense_model)
    assert 0.3 < m.macs_reduction < 0.6 and m.params < m.dense_params


@pytest.mark.slow
def test_example_builds_a_wheel_with_the_entry_point(tmp_path: Path) -> None:
    """The example really is an installable package (built offline, not installed)."""
    names, entry_points = build_wheel(EXAMPLE, tmp_path)
    assert "l1_pruner.py" in names
    assert "[prunekit.pruners]" in entry_points and "l1-filter = l1_pruner:L1Filter" in entry_points
