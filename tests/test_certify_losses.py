"""The certification training losses: HYDRA's smoothing objective (stability KL), IBP /
CROWN-IBP with their eps / kappa / beta ramps driven by the loop's ``set_position``."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit import LOSSES
from prunekit.certify.bounds import Bounds
from prunekit.losses.ibp import CROWNIBPLoss, IBPLoss
from prunekit.losses.smooth import GaussianSmooth


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_smooth_noise_and_objective() -> None:
    model = _net()
    x, y = torch.rand(64, 1, 6, 6), torch.randint(0, 3, (64,))
    loss = LOSSES.build("smooth", eps=0.0, sigma=0.3, beta=2.0)
    torch.manual_seed(1)
    noisy = loss.attack(model, x, y)
    assert abs(float((noisy - x).std()) - 0.3) < 0.02          # N(0, sigma^2), not clipped
    torch.manual_seed(1)
    value, stats = loss(model, x, y)
    torch.manual_seed(1)
    xn = x + 0.3 * torch.randn_like(x)
    ref = F.cross_entropy(model(x), y) + 2.0 * F.kl_div(
        F.log_softmax(model(xn), 1), F.softmax(model(x), 1), reduction="sum") / 64
    assert torch.allclose(value, ref, atol=1e-6) and "stability" in stats
    plain = GaussianSmooth(sigma=0.3, stability=False)
    torch.manual_seed(1)
    assert torch.allclose(plain(model, x, y)[0], F.cross_entropy(model(xn), y), atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        GaussianSmooth(sigma=-1)


def test_ibp_schedule_ramps_eps_kappa_beta() -> None:
    loss = CROWNIBPLoss(eps=0.1, ramp_start=1.0, ramp_epochs=2.0)
    assert loss.schedule() == {"eps": 0.1, "kappa": 0.0, "beta": 0.0}   # no position: final
    loss.set_position(0.5)
    assert loss.schedule() == {"eps": 0.0, "kappa": 1.0, "beta": 1.0}
    loss.set_position(2.0)
    assert loss.schedule() == pytest.approx({"eps": 0.05, "kappa": 0.5, "beta": 0.5})
    ibp = IBPLoss(eps=0.1, ramp_epochs=4.0)
    ibp.set_position(4.0)
    assert ibp.schedule()["kappa"] == 0.5                 # Gowal: kappa 1 -> 0.5
    ibp.set_position(0.0, "finetune")                      # the ramp is the pretraining's
    assert ibp.schedule()["eps"] == 0.1
    ibp.set_position(0.0, "pretrain")
    assert ibp.schedule()["eps"] == 0.0
    with pytest.raises(ValueError, match="kappa_end"):
        IBPLoss(eps=0.1, kappa_end=2.0)


@pytest.mark.parametrize("name", ["ibp", "crown-ibp"])
def test_verified_loss_is_the_bound_ce_and_trains(name: str) -> None:
    model = _net()
    x, y = torch.rand(16, 1, 6, 6), torch.randint(0, 3, (16,))
    loss = LOSSES.build(name, eps=0.05, kappa_start=0.0, kappa_end=0.0)
    value, stats = loss(model, x, y)
    value.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    lb = Bounds(model).margins(x, y, 0.05, "ibp")
    assert stats["verified_acc"] == pytest.approx(float((lb > 0).all(1).float().mean()))
    # robust CE >= clean CE: the bound logits are worse than the clean ones
    assert value.item() >= F.cross_entropy(model(x), y).item() - 1e-6
    # a few steps of verified training raise the margin lower bounds
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = Bounds(model).margins(x, y, 0.05, "ibp").min(1).values.mean()
    for _ in range(30):
        opt.zero_grad()
        loss(model, x, y)[0].backward()
        opt.step()
    assert Bounds(model).margins(x, y, 0.05, "ibp").min(1).values.mean() > before


@pytest.mark.parametrize("bn_stats", ["running", "batch"])
def test_bn_stats_batch_makes_the_robust_term_scale_invariant(bn_stats: str) -> None:
    """``bn_stats: batch`` (auto_LiRPA's training-mode BN): the robust term's gradient of a
    conv followed by BN is orthogonal to its weight, as for the train-mode clean term; with
    the running statistics it points along the weight (shrinking the conv shrinks the bounds:
    the shortcut behind the collapsed fmnist-certify rows, docs/training.md)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).train()
    for _ in range(3):    # running statistics near the batch's
        model(torch.rand(32, 1, 6, 6))
    x, y = torch.rand(32, 1, 6, 6), torch.randint(0, 3, (32,))
    loss = IBPLoss(eps=0.05, kappa_start=0.0, kappa_end=0.0, bn_stats=bn_stats)
    value, stats = loss(model, x, y)
    value.backward()
    w, g = model[0].weight.detach(), model[0].weight.grad
    cos = float((w * g).sum() / (w.norm() * g.norm()).detach())
    if bn_stats == "batch":
        assert abs(cos) < 1e-2      # not exactly 0: BN's eps in var + eps
    else:
        assert cos > 0.1
    assert model.training and "bn_stats=" + bn_stats in repr(loss)
    with pytest.raises(ValueError, match="bn_stats must be one of running, batch"):
        IBPLoss(eps=0.1, bn_stats="train")
