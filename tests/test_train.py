"""The training loop: pruner hooks, schedules, JSONL log, checkpoints, determinism, exact resume,
NaN detection."""
from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from prunekit.config import StageConfig
from prunekit.losses import TRADES
from prunekit.pruning.base import Pruner
from prunekit.train import (NonFiniteLossError, build_loader, fit, make_optimizer,
                            make_scheduler)



def _data(n: int = 48, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long() + 2 * (x[:, 0, 0, 0] > 0.5).long()
    return TensorDataset(x, y)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(64, 4))


def _stage(**kw: Any) -> StageConfig:
    base = dict(epochs=3, lr=0.05, schedule="cosine")
    base.update(kw)
    return StageConfig(**base)


def _run(tmp_path, epochs=3, loss=None, pruner=None, seed=0, ckpt=True, **stage_kw):
    model = _model()
    st = _stage(epochs=epochs, **stage_kw)
    groups = model.parameters()
    if pruner:
        pruner.attach(model, torch.zeros(1, 1, 6, 6))
        groups = pruner.param_groups(model)
    opt = make_optimizer(groups, st)
    loader = build_loader(_data(), 16, seed=seed)
    res = fit(model, loss or TRADES(eps=0.1, step_size=0.05, steps=1), opt,
              make_scheduler(opt, st), loader, epochs, pruner=pruner,
              checkpoint=tmp_path / "ckpt.pt" if ckpt else None,
              log_path=tmp_path / "log.jsonl", seed=seed, progress=False)
    return model, res


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_trains_logs_and_checkpoints(tmp_path):
    model, res = _run(tmp_path, epochs=3)
    assert res.epochs == 3 and len(res.history) == 3 and res.resumed_from == 0
    lines = [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2]
    assert {"loss", "clean_acc", "adv_acc", "lr", "seconds", "stage"} <= set(lines[0])
    assert lines[0]["lr"] == pytest.approx(0.05)                 # cosine: full lr in epoch 0
    assert lines[1]["lr"] == pytest.approx(0.05 * 0.75)          # (1 + cos(pi/3)) / 2
    from prunekit.checkpoint import load

    state = load(tmp_path / "ckpt.pt")
    assert state["epoch"] == 3 and set(state["rng"]) >= {"torch", "numpy", "python", "loader"}
    for k, v in model.state_dict().items():
        assert torch.equal(state["model"][k], v)


def test_same_seed_same_result_different_seed_differs(tmp_path):
    a, _ = _run(tmp_path / "a", seed=1)
    b, _ = _run(tmp_path / "b", seed=1)
    c, _ = _run(tmp_path / "c", seed=2)
    assert _same(a, b)
    assert not _same(a, c)


class _Crash(Exception):
    pass


class CrashingLoss:
    """TRADES that raises after ``n`` calls (a kill in the middle of an epoch)."""

    def __init__(self, n: int) -> None:
        self.n, self.inner = n, TRADES(eps=0.1, step_size=0.05, steps=1)

    def __call__(self, model, x, y):
        self.n -= 1
        if self.n < 0:
            raise _Crash()
        return self.inner(model, x, y)


def test_resume_after_mid_epoch_crash_is_exact(tmp_path):
    ref, ref_res = _run(tmp_path / "ref", epochs=3)
    with pytest.raises(_Crash):
        _run(tmp_path / "cut", epochs=3, loss=CrashingLoss(7))  # 3 steps/epoch: dies in epoch 2
    from prunekit.checkpoint import load

    assert load(tmp_path / "cut" / "ckpt.pt")["epoch"] == 2
    resumed, res = _run(tmp_path / "cut", epochs=3)
    assert res.resumed_from == 2 and len(res.history) == 3
    assert _same(ref, resumed)
    assert [r["loss"] for r in res.history] == [r["loss"] for r in ref_res.history]
    # a finished fit re-run only restores its state
    again, res2 = _run(tmp_path / "cut", epochs=3)
    assert res2.resumed_from == 3 and _same(ref, again)


def test_resume_with_other_epoch_count_is_refused(tmp_path):
    _run(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        _run(tmp_path, epochs=2)


class Recording(Pruner):
    """Stand-in pruner: a gate vector outside the model, a penalty, hook bookkeeping."""

    granularity = "channel"

    def __init__(self, sparsity: float = 0.5, **hp: Any) -> None:
        super().__init__(sparsity, **hp)
        self.steps: list[int] = []
        self.epochs: list[int] = []

    def attach(self, model, example_inputs):
        self.model = model
        self.gate = nn.Parameter(torch.ones(4))
        self._h = model[1].register_forward_hook(lambda m, i, o: o * self.gate.view(1, -1, 1, 1))

    def param_groups(self, model):
        return [{"params": [self.gate], "weight_decay": 0.0},
                {"params": list(model.parameters())}]

    def penalty(self):
        return 0.1 * self.gate.abs().sum()

    def on_step_end(self, step):
        self.steps.append(step)

    def on_epoch_end(self, epoch):
        self.epochs.append(epoch)

    def masks(self):
        return {"1": self.gate.detach() > 0.5}

    def finalize(self, model):
        self._h.remove()
        return model

    def state_dict(self):
        return {"gate": self.gate.detach().clone(), "steps": list(self.steps)}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.gate.copy_(state["gate"])
        self.steps = list(state["steps"])


def test_pruner_hooks_penalty_and_state(tmp_path):
    pr = Recording()
    _, res = _run(tmp_path, epochs=2, pruner=pr)
    assert pr.steps == list(range(6)) and pr.epochs == [0, 1]
    assert res.history[-1]["penalty"] > 0
    assert not torch.equal(pr.gate.detach(), torch.ones(4))  # the gate trained
    from prunekit.checkpoint import load

    state = load(tmp_path / "ckpt.pt")
    torch.testing.assert_close(state["pruner"]["gate"], pr.gate.detach())
    pr2 = Recording()
    _run(tmp_path, epochs=2, pruner=pr2)  # finished: restores the pruner state
    torch.testing.assert_close(pr2.gate.detach(), pr.gate.detach())


def test_nan_loss_raises_clear_error(tmp_path):
    def nan_loss(model, x, y):
        out = F.cross_entropy(model(x), y) * float("nan")
        return out, {"loss": float("nan")}

    with pytest.raises(NonFiniteLossError, match="epoch 0 step 0"):
        _run(tmp_path, epochs=1, loss=nan_loss)


def test_schedules():
    p = [nn.Parameter(torch.zeros(1))]
    st = _stage(epochs=4, lr=1.0, schedule="multistep", milestones=[1, 3], lr_gamma=0.5)
    opt = make_optimizer(p, st)
    sch = make_scheduler(opt, st)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs == [1.0, 0.5, 0.5, 0.25]
    st = _stage(epochs=3, lr=0.3, schedule="constant", optimizer="adam")
    opt = make_optimizer(p, st)
    assert isinstance(opt, torch.optim.Adam)
    sch = make_scheduler(opt, st)
    for _ in range(3):
        opt.step()
        sch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3)


def test_progress_switch(monkeypatch):
    from prunekit.train import progress_enabled

    monkeypatch.setenv("PRUNEKIT_PROGRESS", "0")
    assert progress_enabled() is False
    assert progress_enabled(True) is True


def test_loader_order_is_function_of_seed_and_epoch():
    from prunekit.train import set_loader_epoch

    ds = _data(32)
    a, b = build_loader(ds, 8, seed=3), build_loader(ds, 8, seed=3)
    set_loader_epoch(a, 5)
    first = torch.cat([y for _, y in a])
    for e in range(3):  # b runs other epochs first
        set_loader_epoch(b, e)
        list(b)
    set_loader_epoch(b, 5)
    assert torch.equal(first, torch.cat([y for _, y in b]))
    set_loader_epoch(b, 6)
    assert not torch.equal(first, torch.cat([y for _, y in b]))
