"""The docs/data-and-models.md example: a plain-PyTorch model factory (examples/tiny_model) used
by module path (``model: {name: "tiny_model:tiny_cnn"}``) and by the name its entry point in
the ``prunekit.models`` group registers (``tiny-cnn``): wrapped with prunekit's Normalize and
spec, picked up by the model contract tests, trained and pruned through the pipeline, and
rebuilt from its checkpoint (a module-path model only with ``allow_import``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

from plugin_util import build_wheel, install_example, passed, run_tests
from prunekit import MODELS
from prunekit.checkpoint import load_model
from prunekit.config import ConfigError, RunConfig
from prunekit.models import ForeignModel, Normalize

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny_model"
TESTS = Path(__file__).resolve().parent


def _entry_points() -> dict[str, str]:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    return meta["project"]["entry-points"]["prunekit.models"]


@pytest.fixture
def tiny_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """'Install' the example (dist-info + the example folder on sys.path); undone afterwards."""
    yield install_example(monkeypatch, tmp_path / "site", EXAMPLE, "prunekit-tiny-model",
                          {"prunekit.models": _entry_points()}, MODELS)
    sys.modules.pop("tiny_model", None)


def _cfg(name: str, **model: Any) -> RunConfig:
    return RunConfig.from_dict({
        "name": "tiny", "device": "cpu",
        "data": {"dataset": "synthetic", "input_shape": [1, 12, 12], "num_classes": 4,
                 "size": 48, "batch_size": 16},
        "model": {"name": name, **model},
        "loss": {"name": "trades", "steps": 1},
        "pretrain": {"epochs": 1, "lr": 0.05}, "method": "d2bc", "sparsity": 0.5,
        "prune": {"epochs": 1, "lr": 0.01}, "finetune": {"epochs": 1, "lr": 0.01},
        "eval": {"attacks": ["pgd-2-1"], "n_examples": 8},
    })


def test_example_declares_one_entry_point() -> None:
    assert _entry_points() == {"tiny-cnn": "tiny_model:tiny_cnn"}


def test_entry_point_model_is_wrapped(tiny_plugin: Path) -> None:
    assert "tiny-cnn" in MODELS.names()
    assert MODELS.params("tiny-cnn").names == ("num_classes", "in_channels", "mean", "std",
                                               "width", "depth")
    model = MODELS.build("tiny-cnn", num_classes=4, in_channels=1, mean=[0.5], std=[0.25],
                         depth=2)
    assert isinstance(model, ForeignModel) and isinstance(model.normalize, Normalize)
    assert len(model.net.blocks) == 2 and model.net.stem[0].in_channels == 1
    assert model.prunekit_spec == {"name": "tiny-cnn", "num_classes": 4, "in_channels": 1,
                                   "width": 1.0, "mean": [0.5], "std": [0.25], "depth": 2}


def test_contract_tests_pick_it_up(tiny_plugin: Path) -> None:
    """tests/test_model_contract.py in a fresh process that sees the 'installed' plug-in runs
    every model contract test on ``tiny-cnn``."""
    out = run_tests(TESTS / "test_model_contract.py", "tiny-cnn", [tiny_plugin, EXAMPLE])
    assert passed(out) >= 3, out[-2000:]


def test_bad_option_names_the_factory_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    with pytest.raises(ConfigError, match=r"'model.depht'.*its options: depth"):
        _cfg("tiny_model:tiny_cnn", depht=2)


def test_module_path_model_through_the_pipeline(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Train, prune (D2BC: compaction) and fine-tune the module-path model; the saved model
    rebuilds in this process and, with ``allow_import``, in a fresh one."""
    from prunekit.train import run_pipeline

    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # forget the import after
    res = run_pipeline(_cfg("tiny_model:tiny_cnn", width=0.5, depth=2), tmp_path / "run",
                       progress=False)
    n_dense = sum(p.numel() for p in res.dense_model.parameters())
    assert sum(p.numel() for p in res.model.parameters()) < n_dense
    x = torch.rand(3, 1, 12, 12)
    with torch.no_grad():
        expected = res.model(x)
        assert torch.equal(load_model(tmp_path / "run" / "model.pt").eval()(x), expected)
    torch.save(x, tmp_path / "x.pt")
    torch.save(expected, tmp_path / "y.pt")
    code = ("import sys, torch; from prunekit.checkpoint import load_model\n"
            f"p = {str(tmp_path / 'run' / 'model.pt')!r}\n"
            "try:\n    load_model(p)\nexcept Exception as e:  # one-line CheckpointError\n"
            "    print('refused:', e)\n"
            "m = load_model(p, allow_import=True).eval()\n"
            f"x = torch.load({str(tmp_path / 'x.pt')!r})\n"
            f"y = torch.load({str(tmp_path / 'y.pt')!r})\n"
            "with torch.no_grad():\n    print('equal:', torch.equal(m(x), y))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(EXAMPLE)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: " in proc.stdout
    assert "model 'tiny_model:tiny_cnn' comes from a module path" in proc.stdout
    assert "allow_import=True" in proc.stdout and "equal: True" in proc.stdout


@pytest.mark.slow
def test_example_builds_a_wheel_with_the_entry_point(tmp_path: Path) -> None:
    """The example really is an installable package (built offline, not installed)."""
    names, entry_points = build_wheel(EXAMPLE, tmp_path)
    assert "tiny_model.py" in names
    assert "[prunekit.models]" in entry_points and "tiny-cnn = tiny_model:tiny_cnn" in entry_points
