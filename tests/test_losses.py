"""Adversarial losses vs independent, straightforward re-implementations of the official
TRADES (yaodongyu/TRADES trades.py) and MART (YisenWang/MART mart.py) formulas."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit import LOSSES
from prunekit.losses import MART, PGDAT, TRADES

EPS, STEP, STEPS, BETA = 0.1, 0.03, 4, 6.0



class Recorder(nn.Module):
    """Tiny conv net with BN that records (training, input requires grad) at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, x.requires_grad))
        return self.body(x)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = Recorder()
    x = torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 5, (8,))
    return model, x, y


# ---------------------------------------------------------------- independent references --------
def ref_trades_attack(model, x, eps, step, steps):
    kl = nn.KLDivLoss(reduction="sum")
    model.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            lk = kl(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1))
        g = torch.autograd.grad(lk, [x_adv])[0]
        x_adv = x_adv.detach() + step * torch.sign(g.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train()
    return x_adv.clamp(0.0, 1.0)


def ref_trades_outer(model, x, x_adv, y, beta):
    kl = nn.KLDivLoss(reduction="sum")
    logits = model(x)
    nat = F.cross_entropy(logits, y)
    rob = (1.0 / len(x)) * kl(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1))
    return nat + beta * rob


def ref_mart_attack(model, x, y, eps, step, steps):
    model.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            lce = F.cross_entropy(model(x_adv), y)
        g = torch.autograd.grad(lce, [x_adv])[0]
        x_adv = x_adv.detach() + step * torch.sign(g.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train()
    return x_adv.clamp(0.0, 1.0)


def ref_mart_outer(model, x, x_adv, y, beta):
    kl = nn.KLDivLoss(reduction="none")
    logits = model(x)
    logits_adv = model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    tmp1 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12),
                                                           new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = torch.gather(nat_probs, 1, y.unsqueeze(1).long()).squeeze()
    loss_robust = (1.0 / len(x)) * torch.sum(
        torch.sum(kl(torch.log(adv_probs + 1e-12), nat_probs), dim=1) * (1.0000001 - true_probs))
    return loss_adv + float(beta) * loss_robust


def _grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


def _fixed(loss_fn, x_adv):
    loss_fn.attack = lambda model, x, y: x_adv  # instance override: outer loss on a fixed x_adv
    return loss_fn


# ----------------------------------------------------------------------------- tests ------------
def test_registry_builds_each_loss():
    for name, cls in (("trades", TRADES), ("mart", MART), ("pgd_at", PGDAT)):
        lf = LOSSES.build(name, eps=EPS, step_size=None, steps=STEPS, beta=BETA)
        assert isinstance(lf, cls) and lf.step_size == pytest.approx(EPS / 4)
    with pytest.raises(ValueError):
        TRADES(eps=-0.1)


@pytest.mark.parametrize("name,ref", [("trades", ref_trades_outer), ("mart", ref_mart_outer)])
def test_outer_loss_matches_official_formula_and_gradients(name, ref):
    model, x, y = _setup()
    x_adv = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    lf = _fixed(LOSSES.build(name, eps=EPS, step_size=STEP, steps=STEPS, beta=BETA), x_adv)
    ref_model = Recorder()
    ref_model.load_state_dict(model.state_dict())
    model.train(), ref_model.train()
    loss, stats = lf(model, x, y)
    loss.backward()
    expected = ref(ref_model, x, x_adv, y, BETA)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert stats["loss"] == pytest.approx(expected.item(), abs=1e-6)
    for g, h in zip(_grads(model), _grads(ref_model)):  # nothing detached: same gradients
        torch.testing.assert_close(g, h, atol=1e-6, rtol=1e-5)
    # same BatchNorm running statistics (TRADES forwards x twice, like the official code)
    torch.testing.assert_close(model.body[1].running_mean, ref_model.body[1].running_mean)
    assert int(model.body[1].num_batches_tracked) == int(ref_model.body[1].num_batches_tracked)


@pytest.mark.parametrize("name", ["trades", "mart"])
def test_inner_attack_matches_official_loop(name):
    model, x, y = _setup()
    lf = LOSSES.build(name, eps=EPS, step_size=STEP, steps=STEPS, beta=BETA)
    model.train()
    torch.manual_seed(123)
    x_adv = lf.attack(model, x, y)
    assert model.training
    torch.manual_seed(123)
    if name == "trades":
        expected = ref_trades_attack(model, x, EPS, STEP, STEPS)
    else:
        expected = ref_mart_attack(model, x, y, EPS, STEP, STEPS)
    torch.testing.assert_close(x_adv, expected, atol=1e-6, rtol=0)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_full_trades_and_mart_match_reference_end_to_end():
    for name, ratk, rout in (("trades", lambda m, x, y: ref_trades_attack(m, x, EPS, STEP, STEPS),
                              ref_trades_outer),
                             ("mart", lambda m, x, y: ref_mart_attack(m, x, y, EPS, STEP, STEPS),
                              ref_mart_outer)):
        model, x, y = _setup(1)
        ref_model = Recorder()
        ref_model.load_state_dict(model.state_dict())
        lf = LOSSES.build(name, eps=EPS, step_size=STEP, steps=STEPS, beta=BETA)
        torch.manual_seed(7)
        loss, _ = lf(model.train(), x, y)
        torch.manual_seed(7)
        expected = rout(ref_model.train(), x, ratk(ref_model, x, y), y, BETA)
        assert loss.item() == pytest.approx(expected.item(), abs=1e-6), name


def test_pgd_at_matches_madry_reference():
    model, x, y = _setup(2)
    ref_model = Recorder()
    ref_model.load_state_dict(model.state_dict())
    lf = LOSSES.build("pgd_at", eps=EPS, step_size=STEP, steps=STEPS)
    torch.manual_seed(5)
    loss, stats = lf(model.train(), x, y)
    torch.manual_seed(5)
    ref_model.eval()
    xa = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
    for _ in range(STEPS):
        xa.requires_grad_()
        g = torch.autograd.grad(F.cross_entropy(ref_model(xa), y, reduction="sum"), [xa])[0]
        xa = torch.min(torch.max(xa.detach() + STEP * g.sign(), x - EPS), x + EPS).clamp(0, 1)
    ref_model.train()
    expected = F.cross_entropy(ref_model(xa), y)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert set(stats) >= {"loss", "clean_acc", "adv_acc"}


def test_trades_with_eps_zero_is_cross_entropy():
    model, x, y = _setup(3)
    lf = TRADES(eps=0.0, step_size=0.01, steps=3, beta=BETA)
    loss, stats = lf(model.train(), x, y)
    ref_model = Recorder()
    ref_model.load_state_dict(model.state_dict())
    # the first (clean) forward of the loss is the same batch in train mode
    torch.testing.assert_close(loss, F.cross_entropy(ref_model.train()(x), y), atol=1e-6, rtol=0)
    assert stats["kl"] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name", ["trades", "mart", "pgd_at"])
def test_attack_runs_in_eval_mode_and_mode_is_restored(name):
    model, x, y = _setup(4)
    lf = LOSSES.build(name, eps=EPS, step_size=STEP, steps=STEPS, beta=BETA)
    model.train()
    model.body[1].eval()  # a mixed-mode model: per-module modes must come back as they were
    model.calls.clear()
    loss, stats = lf(model, x, y)
    attack_calls = [c for c in model.calls if c[1]]   # inputs requiring grad: attack steps
    assert len(attack_calls) == STEPS
    assert all(not training for training, _ in attack_calls)
    assert model.training and not model.body[1].training and model.body[0].training
    assert model.calls[-1][0] is True  # the outer loss ran in the caller's (train) mode
    for k in ("loss", "clean_acc", "adv_acc"):
        assert isinstance(stats[k], float)
    model.eval()
    lf(model, x, y)
    assert not any(m.training for m in model.modules())


def test_losses_accept_autocast_and_return_fp32():
    model, x, y = _setup(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = TRADES(eps=EPS, step_size=STEP, steps=2)(model.train(), x, y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
