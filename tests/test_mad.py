"""MAD (baselines/mad.py, mad_kfac.py): the saliency against an independent K-FAC computation,
the im2col order against the convolution itself, the mask optimisation, and a calibration pass
that leaves the model untouched."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit import LOSSES, MODELS, PRUNERS
from baselines.mad_kfac import MASK_ONE, MASK_ZERO, _patches, batch_saliency, optimise_masks


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    return model, torch.randn(8, 6), torch.randint(0, 3, (8,))


def test_saliency_equals_kfac_quadratic_form_terms():
    model, x, y = _tiny()
    layer = model[2]
    logits = {"2": torch.randn(3, 5)}  # masks somewhere inside (0, 1)
    sal = batch_saliency(model, {"2": layer}, x, y, logits)["2"]
    # independent: per-example output gradients of CE at the masked weights, the layer's inputs
    a = torch.relu(model[0](x)).detach()
    out = F.linear(a, layer.weight * F.softplus(logits["2"]), layer.bias)
    g = torch.stack([torch.autograd.grad(F.cross_entropy(out[b:b + 1], y[b:b + 1]), out,
                                         retain_graph=True)[0][b] for b in range(8)])
    cov_a = a.t() @ a / 8
    g_diag = (g * g).mean(0)                    # E[g_i^2]: the diagonal of G
    dw = layer.weight.detach() * (1 - F.softplus(logits["2"]))
    quad = 0.5 * dw.flatten() @ torch.kron(torch.diag(g_diag), cov_a) @ dw.flatten()
    torch.testing.assert_close(sal.sum(), quad, rtol=1e-4, atol=1e-7)
    rows = 0.5 * g_diag * torch.einsum("ij,jk,ik->i", dw, cov_a, dw)
    torch.testing.assert_close(sal.sum(1), rows, rtol=1e-4, atol=1e-7)
    assert (sal.sum(1) >= 0).all()              # each row a PSD quadratic form
    # unmasked weights (softplus(m) = 1) have no damage
    zero = batch_saliency(model, {"2": layer}, x, y, {"2": torch.full((3, 5), MASK_ONE)})["2"]
    assert torch.allclose(zero, torch.zeros_like(zero), atol=1e-12)


def test_patches_follow_the_weight_layout():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 3, 7, 7)
    p = _patches(conv, x)                                        # [B*L, C*k*k]
    out = (p @ conv.weight.reshape(4, -1).t()).reshape(2, -1, 4).permute(0, 2, 1)
    torch.testing.assert_close(out.reshape(2, 4, 4, 4), conv(x), rtol=1e-5, atol=1e-5)


def test_mask_optimisation_lowers_adversarial_loss_and_touches_nothing_else():
    model, x, y = _tiny()
    before = copy.deepcopy(model.state_dict())
    layers = {"0": model[0], "2": model[2]}
    eff = lambda lg: torch.func.functional_call(  # noqa: E731
        model, {f"{k}.weight": layers[k].weight * F.softplus(v) for k, v in lg.items()}, (x,))
    ones = {k: torch.full_like(m.weight, MASK_ONE) for k, m in layers.items()}
    logits, _, _ = optimise_masks(model, layers, x, y, steps=10, lr=0.1)
    assert F.cross_entropy(eff(logits), y) < F.cross_entropy(eff(ones), y)
    assert all(((v >= MASK_ZERO - 1e-6) & (v <= MASK_ONE + 1e-6)).all() for v in logits.values())
    assert any((v < MASK_ONE - 1e-3).any() for v in logits.values())   # masks moved
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_calibrate_leaves_model_alone_and_prunes_lowest_saliency():
    torch.manual_seed(0)
    model = MODELS.build("vgg-small", num_classes=4, in_channels=1, width=0.25).eval()
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 4, (8,))
    state = copy.deepcopy(model.state_dict())
    pruner = PRUNERS.build("mad", sparsity=0.5, calib_batches=2, mask_steps=3)
    pruner.attach(model, x[:1])
    pruner.calibrate(model, iter([(x, y), (x.flip(0), y.flip(0))]),
                     LOSSES.build("pgd_at", eps=0.05, steps=2))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and not model.training
    masks = pruner.masks()
    sal = pruner._saliency
    pruned = torch.cat([sal[k][~masks[k].cpu()] for k in masks])
    kept = torch.cat([sal[k][masks[k].cpu()] for k in masks])
    assert pruned.max() <= kept.min()           # official --largest false: lowest removed
    s = pruner.summary()
    assert s["calib_batches"] == 2 and 0 <= s["adv_acc_before_masks"] <= 1
    flipped = PRUNERS.build("mad", sparsity=0.5, largest=True)
    flipped.attach(model, x[:1])
    flipped.load_state_dict(pruner.state_dict())
    fm = flipped.masks()
    assert torch.cat([sal[k][~fm[k]] for k in fm]).min() >= torch.cat(
        [sal[k][fm[k]] for k in fm]).max()      # --largest true: highest removed


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="calib_batches"):
        PRUNERS.build("mad", sparsity=0.5, calib_batches=0)
    with pytest.raises(ValueError, match="mask_lr"):
        PRUNERS.build("mad", sparsity=0.5, mask_lr=0)
