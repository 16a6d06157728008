"""Contract tests run on every registered loss (built-ins and ``prunekit.losses`` entry-point
plug-ins, over ``LOSSES.names()``), built the way the pipeline builds them (a ``loss:`` config
section, prunekit/sections.py).

What a loss must do (docs/architecture.md, "Add a loss"): at ``eps = 0`` it equals its clean
counterpart ``loss.clean(model, x, y)`` -- value, parameter gradients and BatchNorm statistics;
the inner attack stays in the eps-ball and in [0, 1] and leaves BatchNorm statistics alone (it
runs in eval mode); every module's train/eval mode comes back as it was; the stats are floats
with the accuracies in [0, 1] (``clean_acc`` unless the loss declares ``clean_stats = False``).
A replaying loss (``replays > 1``, free AT) carries its perturbation from call to call: its
attack is checked after one training call and backward (a fresh one starts at zero), and the
perturbation must move with the gradient the backward left and stay in the eps-ball.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit import LOSSES
from prunekit.config import LossConfig
from prunekit.sections import build_loss

NAMES = LOSSES.names()
EPS, STEPS = 0.1, 3


def _loss(name: str, eps: float) -> object:
    """``eps`` is the noise sigma of a ``gaussian``-threat loss (randomized smoothing)."""
    gaussian = LOSSES.get(name).threat == "gaussian"
    return build_loss(LossConfig(name=name, eps=eps, step_size=eps / 4 if eps else 0.01,
                                 steps=STEPS, options={"sigma": eps} if gaussian else {}))


def _setup(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny conv net with BN in a mixed mode (train, one BN in eval) and a batch."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 5))
    model.train()
    model[4].eval()
    return model, torch.rand(8, 1, 8, 8), torch.randint(0, 5, (8,))


def _modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def _buffers(model: nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for b in model.buffers()]


@pytest.mark.parametrize("name", NAMES)
def test_eps_zero_equals_the_clean_counterpart(name: str) -> None:
    model_a, x, y = _setup()
    model_b = copy.deepcopy(model_a)
    lf = _loss(name, 0.0)
    loss_a, stats = lf(model_a, x, y)
    loss_b, _ = lf.clean(model_b, x, y)
    assert torch.allclose(loss_a, loss_b, atol=1e-6, rtol=1e-6), (loss_a, loss_b)
    loss_a.backward()
    loss_b.backward()
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6, rtol=1e-5)
    for ba, bb in zip(model_a.buffers(), model_b.buffers()):  # same BN statistics updates
        assert torch.equal(ba, bb)
    assert _modes(model_a) == _modes(model_b) == _modes(_setup()[0])
    assert stats["loss"] == pytest.approx(loss_a.item(), abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_attack_stays_in_the_ball_in_eval_mode(name: str) -> None:
    if LOSSES.get(name).threat != "linf":
        pytest.skip("noise (smoothing) or no attack at all (verified training): "
                    "tests/test_certify_losses.py")
    model, x, y = _setup(1)
    lf = _loss(name, EPS)
    if lf.replays > 1:  # a replaying loss moves its carried perturbation after a backward
        lf(model, x, y)[0].backward()
    before, modes = _buffers(model), _modes(model)
    x_adv = lf.attack(model, x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv != x).any(), "the attack did not move the input"
    for b0, b1 in zip(before, model.buffers()):  # eval mode while attacking: BN untouched
        assert torch.equal(b0, b1)
    assert _modes(model) == modes


@pytest.mark.parametrize("name", NAMES)
def test_loss_restores_modes_and_reports_stats(name: str) -> None:
    model, x, y = _setup(2)
    modes = _modes(model)
    loss, stats = _loss(name, EPS)(model, x, y)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert _modes(model) == modes
    lf = _loss(name, EPS)
    assert {"loss", "adv_acc"} | ({"clean_acc"} if lf.clean_stats else set()) <= set(stats)
    assert all(isinstance(v, float) for v in stats.values())
    assert 0.0 <= stats.get("clean_acc", 0.0) <= 1.0 and 0.0 <= stats["adv_acc"] <= 1.0
    model.eval()
    _loss(name, EPS)(model, x, y)
    assert not any(_modes(model))


@pytest.mark.parametrize("name", NAMES)
def test_replays_and_epoch_hooks_are_well_formed(name: str) -> None:
    lf = _loss(name, EPS)
    assert isinstance(lf.replays, int) and lf.replays >= 1
    lf.begin_epoch(0, [])
    extra = lf.end_epoch(_setup()[0])
    assert isinstance(extra, dict)


@pytest.mark.parametrize("name", [n for n in NAMES if _loss(n, EPS).replays > 1])
def test_replaying_loss_carries_its_perturbation(name: str) -> None:
    model, x, y = _setup(3)
    lf = _loss(name, EPS)
    assert torch.equal(lf.attack(model, x, y), x.clamp(0, 1)), "a fresh perturbation is zero"
    seen = [x]
    for _ in range(3):
        model.zero_grad()
        lf(model, x, y)[0].backward()
        x_adv = lf.attack(model, x, y)
        assert (x_adv - x).abs().max() <= EPS + 1e-6
        seen.append(x_adv)
    assert not torch.equal(seen[1], seen[0]) and not torch.equal(seen[2], seen[1])
    lf.begin_epoch(1, [])  # reset at an epoch start (exact resume)
    assert torch.equal(lf.attack(model, x, y), x.clamp(0, 1))
