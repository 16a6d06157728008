"""Divergence checks of the training loop: :class:`NonFiniteLossError` (a NaN/inf loss),
:class:`NonFiniteWeightsError` and :func:`check_finite_state` (NaN/inf weights, buffers or
eval-mode outputs after an epoch)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from prunekit.modes import eval_mode

__all__ = ["NonFiniteLossError", "NonFiniteWeightsError", "check_finite_state"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the run is recorded as failed)."""


class NonFiniteWeightsError(NonFiniteLossError):
    """After an epoch a weight or buffer (BatchNorm statistics included) is NaN or infinite: the
    stage diverged even if every loss it computed was finite (one huge step). The run is
    recorded as failed; the diverged state is never checkpointed or cached."""



def check_finite_state(model: nn.Module, optimizer: torch.optim.Optimizer | None, where: str,
                       lr: float | None = None, inputs: Tensor | None = None) -> None:
    """Raise :class:`NonFiniteWeightsError` if a floating-point parameter or buffer of ``model``
    (or a parameter only the optimizer holds, e.g. pruner gates) is NaN or infinite, or if the
    model's eval-mode outputs on ``inputs`` (one training batch) are.

    The second test catches a diverged stage whose tensors are still finite: after one huge step
    (lr 1e6) the weights are ~1e5 while the BatchNorm statistics are not, and eval-mode logits
    overflow. ``where`` starts the message (``"pretrain: after epoch 1/1"``); the optimizer's
    settings are appended so the message names what to change."""
    named = [(n, t) for n, t in list(model.named_parameters()) + list(model.named_buffers())
             if t.is_floating_point()]
    if optimizer is not None:
        own = {id(t) for _, t in named}
        named += [(f"optimizer group {g} param {i}", p)
                  for g, group in enumerate(optimizer.param_groups)
                  for i, p in enumerate(group["params"]) if id(p) not in own]
    if not named:
        return
    with torch.no_grad():
        ok = torch.stack([torch.isfinite(t.detach()).all() for _, t in named]).tolist()
    bad = [n for (n, _), good in zip(named, ok) if not good]
    what = f"{len(bad)} of {len(named)} weight/buffer tensors are NaN or infinite (first: " \
           f"{bad[0]})" if bad else ""
    if not bad and inputs is not None:
        with torch.no_grad(), eval_mode(model):
            out = model(inputs)
        if not bool(torch.isfinite(out).all()):
            biggest = max(float(t.detach().abs().max()) for _, t in named if t.numel())
            what = (f"the weights are finite (largest |w| {biggest:.3g}) but the model's "
                    f"eval-mode outputs on a training batch are NaN or infinite")
    if not what:
        return
    settings = ""
    if optimizer is not None:
        g = optimizer.param_groups[0]
        lr = float(g["lr"]) if lr is None else lr
        extras = [f"{k} {g[k]:.3g}" for k in ("momentum", "weight_decay")
                  if isinstance(g.get(k), (int, float))]
        settings = f" with {type(optimizer).__name__} lr {lr:.3g}" + (
            f" ({', '.join(extras)})" if extras else "")
    stage = where.split(":", 1)[0]
    raise NonFiniteWeightsError(f"{where}: {what}{settings}; the {stage} stage diverged: "
                                f"lower its learning rate ({stage}.lr)")
