"""The Pruner lifecycle extensions (issue 22): sparse training from scratch
(``needs_pretrain = False``), a calibration pass over data with the run's loss (``calibrate``),
the prune-stage optimizer handed to the pruner (``bind_optimizer``) and the stage's length
(``begin_stage``)."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from prunekit import PRUNERS
from prunekit.losses.base import AdvLoss
from prunekit.train import run_pipeline
from prunekit.train.pipeline import uses_pretraining
from test_pipeline import GatePruner, _cfg


class ScratchCalibrated(GatePruner):
    """GatePruner that trains from scratch, calibrates on a few batches and keeps the optimizer."""

    needs_pretrain = False
    calls: list[Any] = []

    def calibrate(self, model: nn.Module, batches: Any, loss: Any) -> None:
        x, y = next(batches)
        x2, _ = next(batches)
        x_adv = loss.attack(model, x, y)
        type(self).calls.append(("calibrate", model.training, isinstance(loss, AdvLoss),
                                 tuple(x.shape), bool((x_adv - x).abs().max() > 0),
                                 x.device.type, not torch.equal(x, x2)))

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        type(self).calls.append(("bind", any(p is self.gate for g in optimizer.param_groups
                                            for p in g["params"])))

    def begin_stage(self, epochs: int, steps_per_epoch: int) -> None:
        type(self).calls.append(("begin", epochs, steps_per_epoch))

    def on_step_end(self, step: int) -> None:
        type(self).calls.append(("step", bool(self.optimizer.state)))


@pytest.fixture
def scratch() -> Any:
    ScratchCalibrated.calls = []
    PRUNERS.add("_test_scratch", ScratchCalibrated)
    yield "_test_scratch"
    PRUNERS.remove("_test_scratch")


def test_from_scratch_calibrate_and_bind(tmp_path, scratch):
    cfg = _cfg(method=scratch, sparsity=0.5, prune={"epochs": 1}, finetune={"epochs": 0})
    assert not uses_pretraining(cfg) and uses_pretraining(_cfg())
    res = run_pipeline(cfg, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert res.records["pretrain"].skipped
    assert not (tmp_path / "cache" / "pretrain").exists()  # no dense pretraining at all
    calls = ScratchCalibrated.calls
    # one calibration pass, eval mode, the run's AdvLoss, batches of the training loader on the
    # device, a fresh batch each time; then the optimizer; then steps that see its state
    assert calls[0] == ("calibrate", False, True, (16, 1, 12, 12), True, "cpu", True)
    assert calls[1] == ("bind", True)
    assert calls[2] == ("begin", 1, 3)  # the stage's length, before its first step
    steps = [c for c in calls if c[0] == "step"]
    assert len(steps) == 3 and all(s[1] for s in steps)  # 48 examples / batch 16


def test_dense_model_of_a_scratch_method_is_the_initialisation(tmp_path, scratch):
    a = run_pipeline(_cfg(method=scratch, sparsity=0.5, prune={"epochs": 1},
                          finetune={"epochs": 0}), tmp_path / "a", progress=False)
    b = run_pipeline(_cfg(pretrain={"epochs": 0}), tmp_path / "b", progress=False)
    sa, sb = a.dense_model.state_dict(), b.dense_model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seeded init, untrained
