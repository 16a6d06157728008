"""``lrnas: {bn_clean_forward: true}`` (official adv_train.py:106, issue 25): the BN running
statistics see the clean batch in training mode before the loss when on, not when off; the
loss value and its gradients are unchanged; the searcher passes the option to the pipeline."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.search import LRNAS
from prunekit.search.training import CleanBNForward

SHIFT = 0.25


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """A deterministic stand-in for an adversarial loss: CE on ``x + SHIFT`` in train mode."""
    v = F.cross_entropy(model(x + SHIFT), y)
    return v, {"loss": float(v.detach())}


def _step(model: nn.Module, loss, x, y):
    model.train()
    value, _ = loss(model, x, y)
    value.backward()
    return value.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_bn_statistics_see_the_clean_batch_only_when_on_and_the_loss_is_unchanged() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 2, 4, 4, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    mom = 0.1
    mu_clean = x.mean(dim=(0, 2, 3))
    mu_adv = (x + SHIFT).mean(dim=(0, 2, 3))

    off = _model()
    v_off, g_off = _step(off, _loss, x, y)
    bn = off[0]
    assert torch.allclose(bn.running_mean, mom * mu_adv)          # the adversarial batch only
    assert int(bn.num_batches_tracked) == 1

    on = _model()
    v_on, g_on = _step(on, CleanBNForward(_loss), x, y)
    bn = on[0]
    # clean first, then the adversarial batch: two momentum updates
    assert torch.allclose(bn.running_mean, (1 - mom) * (mom * mu_clean) + mom * mu_adv)
    unbiased = x.var(dim=(0, 2, 3), unbiased=True)
    assert torch.allclose(bn.running_var, (1 - mom) * ((1 - mom) + mom * unbiased)
                          + mom * (x + SHIFT).var(dim=(0, 2, 3), unbiased=True))
    assert int(bn.num_batches_tracked) == 2
    # the training-mode loss normalises by batch statistics: value and gradients identical
    assert torch.equal(v_on, v_off)
    assert all(torch.equal(a, b) for a, b in zip(g_on, g_off)) and len(g_on) == len(g_off)


def test_clean_forward_builds_no_graph_and_restores_the_mode() -> None:
    model = _model().eval()
    seen = []

    def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor):
        seen.append(m.training)
        return m(x).sum() * 0, {}

    CleanBNForward(loss)(model, torch.rand(4, 2, 4, 4), torch.zeros(4, dtype=torch.long))
    assert seen == [False]                    # the loss sees the caller's mode
    assert int(model[0].num_batches_tracked) == 1 and not model.training
    assert all(p.grad is None for p in model.parameters())


def test_the_searcher_passes_the_option_to_the_training_stage() -> None:
    assert LRNAS().train_options()["bn_clean_forward"] is False
    assert LRNAS(bn_clean_forward=True).train_options()["bn_clean_forward"] is True
