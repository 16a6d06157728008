"""One file plus an entry point per family: examples/more_plugins ships a loss
(``pgd-at-ls``, prunekit.losses) and a dataset (``stripes``, prunekit.datasets). 'Installed',
they are discovered by the registries, configurable with their own options, and the loss /
dataset contract tests run on them in a fresh process (the model and pruner examples:
tests/test_model_plugin.py, tests/test_plugin.py)."""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
import torch

from plugin_util import install_example, passed, run_tests
from prunekit import DATASETS, LOSSES
from prunekit.config import ConfigError, RunConfig
from prunekit.sections import build_loss
from prunekit.train.data import build_train_set

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "more_plugins"
TESTS = Path(__file__).resolve().parent


def _entry_points() -> dict[str, dict[str, str]]:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    return dict(meta["project"]["entry-points"])


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    yield install_example(monkeypatch, tmp_path / "site", EXAMPLE, "prunekit-more-plugins",
                          _entry_points(), LOSSES, DATASETS)
    for mod in ("smooth_pgd_at", "stripes"):
        sys.modules.pop(mod, None)


def test_example_declares_one_entry_point_per_plugin() -> None:
    assert _entry_points() == {"prunekit.losses": {"pgd-at-ls": "smooth_pgd_at:SmoothPGDAT"},
                               "prunekit.datasets": {"stripes": "stripes:stripes"}}


def test_configured_with_their_own_options(plugins: Path) -> None:
    cfg = RunConfig.from_dict({"data": {"dataset": "stripes", "size": 20, "period": 6},
                               "loss": {"name": "pgd-at-ls", "smoothing": 0.2, "steps": 2}})
    ds, spec = build_train_set(cfg)
    assert len(ds) == 20 and spec.input_shape == (1, 16, 16)
    loss = build_loss(cfg.resolve(spec.eps).loss)
    assert loss.smoothing == 0.2 and loss.steps == 2 and loss.eps == pytest.approx(0.1)
    with pytest.raises(ConfigError, match=r"'loss.smooth'.*its options: smoothing"):
        RunConfig.from_dict({"loss": {"name": "pgd-at-ls", "smooth": 0.2}})
    with pytest.raises(ConfigError, match=r"loss.beta: loss 'pgd-at-ls' takes no 'beta'"):
        RunConfig.from_dict({"loss": {"name": "pgd-at-ls", "beta": 3.0}})
    # label smoothing really is in the outer objective: smoothing 0 gives plain CE
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))
    x, y = ds[0][0].unsqueeze(0), torch.tensor([ds[0][1]])
    plain = LOSSES.build("pgd-at-ls", eps=0.0, smoothing=0.0).clean(model, x, y)[0]
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(model(x), y))
    assert not torch.allclose(loss.clean(model, x, y)[0], plain)


@pytest.mark.parametrize("test_file, name", [("test_loss_contract.py", "pgd-at-ls"),
                                             ("test_dataset_contract.py", "stripes")])
def test_contract_tests_pick_them_up(plugins: Path, test_file: str, name: str) -> None:
    out = run_tests(TESTS / test_file, name, [plugins, EXAMPLE])
    assert passed(out) >= 3, out[-2000:]
