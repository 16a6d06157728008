"""MAD's adversarial saliency (Lee, Kim, Ro, *Masking Adversarial Damage: Finding Adversarial
Saliency for Robust and Sparse Network*, CVPR 2022; official code ByungKwanLee/Masking-
Adversarial-Damage). One calibration batch, three steps, as the official ``compute_saliency.py``
and ``pruner/kfac_MAD_pruner.py`` do:

1. **Mask optimisation** (``_optimize_mask``, kfac_MAD_pruner.py:102-133): a real-valued mask
   ``m`` per weight, effective weight ``w * softplus(m)``, ``m`` initialised so that
   ``softplus(m) = 1`` (models/operator/mask.py: ``initial_mask = 1``, ``f = softplus``);
   ``mask_steps`` Adam steps (lr ``mask_lr``) minimising cross-entropy on the **adversarial**
   batch with the model in eval mode and the weights fixed, ``m`` clamped after each step to
   ``[f^-1(0), f^-1(1)]`` (``clamping_mask_network``; ``f^-1(0)`` uses 1e-4 as the official
   ``f_inv``).
2. **K-FAC factors** at the optimised masks (``_compute_minibatch_fisher`` with
   ``fisher_type=False``: CE on the true labels, one backward; utils/kfac_utils.py
   ``ComputeCovA`` / ``ComputeCovG``): per layer the input covariance ``A`` (conv: im2col
   patches divided by the spatial size, ``A = a^T a / B``; linear: ``a^T a / B``) and the output
   gradient covariance ``G`` (batch-averaged gradients re-scaled by ``B`` and, for convs, by the
   spatial size ``S``: ``G = g^T g / (B S)``).
3. **Adversarial damage** (``_compute_delta_L``, kfac_MAD_pruner.py:291-313): with
   ``dw = w - w * softplus(m)`` (rows = output units, columns = fan-in), the saliency of weight
   ``(i, j)`` is ``0.5 * G[i, i] * dw[i, j] * (dw[i] @ A)[j]`` -- the elementwise terms of the
   block-diagonal K-FAC quadratic form ``0.5 dw^T (G (x) A) dw`` keeping only ``G``'s diagonal,
   as the official loop does. Only ``diag(G)`` is therefore computed here (same numbers).

Deviations (docs/baselines.md): biases are neither masked nor scored (the official code masks
and scores them as an extra fan-in column; prunekit's sparsity counts weights, and the models'
convs have no bias: BN follows); grouped convolutions are refused.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["MASK_ONE", "MASK_ZERO", "optimise_masks", "kfac_saliency", "batch_saliency"]

#: softplus^-1(1) and softplus^-1(1e-4): the official init and clamp range of the mask logits
MASK_ONE = math.log(math.e - 1.0)
MASK_ZERO = math.log(math.expm1(1e-4))


def optimise_masks(model: nn.Module, layers: dict[str, nn.Module], x_adv: Tensor, y: Tensor,
                   steps: int, lr: float) -> tuple[dict[str, Tensor], float, float]:
    """Step 1: the mask logits after ``steps`` Adam steps on CE(f(x_adv; w * softplus(m)), y).
    Returns the logits and the batch's adversarial accuracy before / after (the official
    ``debug`` lines)."""
    weights = {f"{n}.weight": m.weight.detach() for n, m in layers.items()}
    logits = {k: torch.full_like(w, MASK_ONE, requires_grad=True) for k, w in weights.items()}
    opt = torch.optim.Adam(list(logits.values()), lr=lr)  # official: a new Adam per batch

    def forward() -> Tensor:
        eff = {k: weights[k] * F.softplus(logits[k]) for k in weights}
        return functional_call(model, eff, (x_adv,))

    with torch.no_grad():
        before = float((forward().argmax(1) == y).float().mean())
    for _ in range(steps):
        loss = F.cross_entropy(forward(), y)
        # gradients of the logits only: the model's own parameters are left untouched
        for t, grad in zip(logits.values(), torch.autograd.grad(loss, list(logits.values()))):
            t.grad = grad
        opt.step()
        with torch.no_grad():
            for t in logits.values():
                t.clamp_(MASK_ZERO, MASK_ONE)
    with torch.no_grad():
        after = float((forward().argmax(1) == y).float().mean())
    return {k[:-len(".weight")]: t.detach() for k, t in logits.items()}, before, after


def _patches(layer: nn.Conv2d, a: Tensor) -> Tensor:
    """im2col rows ``[B * L, C * kh * kw]`` in the weight's (C, kh, kw) order."""
    cols = F.unfold(a, layer.kernel_size, dilation=layer.dilation, padding=layer.padding,
                    stride=layer.stride)                                   # [B, C*k*k, L]
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def kfac_saliency(layer: nn.Module, a: Tensor, g: Tensor, logits: Tensor) -> Tensor:
    """Step 3 for one layer from its input ``a`` and output gradient ``g`` (one batch; ``g`` the
    gradient of the batch-mean loss), shaped like ``layer.weight``."""
    batch = a.shape[0]
    if isinstance(layer, nn.Conv2d):
        spatial = g.shape[2] * g.shape[3]
        p = _patches(layer, a) / spatial
        cov_a = p.t() @ (p / batch)
        g_rows = g.permute(0, 2, 3, 1).reshape(-1, g.shape[1]) * (batch * spatial)
        g_diag = (g_rows * g_rows).sum(0) / g_rows.shape[0]
    else:
        a2 = a.reshape(batch, -1)
        cov_a = a2.t() @ (a2 / batch)
        g_diag = (g * g).sum(0) * batch
    w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    dw = w - w * F.softplus(logits.reshape_as(w))
    return (0.5 * g_diag[:, None] * dw * (dw @ cov_a)).reshape(layer.weight.shape)


def batch_saliency(model: nn.Module, layers: dict[str, nn.Module], x_adv: Tensor, y: Tensor,
                   logits: dict[str, Tensor]) -> dict[str, Tensor]:
    """Step 2 + 3: one CE backward at the optimised masks, inputs and output gradients captured
    per layer, the saliency of every weight."""
    for name, layer in layers.items():
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            raise ValueError(f"mad: grouped convolution {name} is not supported")
    inputs: dict[str, Tensor] = {}
    grads: dict[str, Tensor] = {}

    def hook(name: str) -> Callable[..., None]:
        def fn(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            inputs[name] = args[0].detach()
            out.register_hook(lambda grad: grads.__setitem__(name, grad.detach()))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    try:
        eff = {f"{n}.weight": m.weight.detach() * F.softplus(logits[n])
               for n, m in layers.items()}
        eff = {k: v.requires_grad_() for k, v in eff.items()}
        loss = F.cross_entropy(functional_call(model, eff, (x_adv,)), y)
        torch.autograd.grad(loss, list(eff.values()))  # fires the output hooks; no .grad left
    finally:
        for h in handles:
            h.remove()
    return {n: kfac_saliency(m, inputs[n], grads[n], logits[n]) for n, m in layers.items()}
