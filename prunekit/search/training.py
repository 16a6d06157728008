"""Training a found network as the official LRNAS script does (``adv_train.py``, ``loss.py``):
the Madry loss with the official start, gradient-norm clipping, the linearly increasing drop
path and the optional auxiliary-head loss -- as small pieces the pipeline plugs into
:func:`prunekit.train.fit` (none of them changes ``fit`` itself).

- :class:`PGDATNormal` (loss ``pgd_at_normal``): ``loss.madry_loss`` -- PGD from
  ``x + 0.001 N(0, 1)`` (not clamped before the first step) with the model in eval mode, then
  ``CE(f(x_adv), y)`` in train mode. The official script: 7 steps of 0.01, eps 8/255. prunekit's
  ``pgd_at`` starts uniformly in the eps-ball instead (Madry et al.'s evaluation start).
- :func:`clip_gradients`: ``nn.utils.clip_grad_norm_(params, max_norm)`` before every optimizer
  step (an optimizer step pre-hook; the official script clips at 5).
- :class:`DropPathSchedule`: ``model.drop_path_prob = p * epoch / epochs`` at the start of every
  epoch (official), derived from the wrapped LR scheduler's epoch so it survives a resume.
- :class:`WithAuxiliary`: adds ``weight * CE(aux_logits, y)`` of the last training-mode forward
  (the official script's ``--auxiliary`` path; broken there -- ``logits_aux`` is never returned --
  and off by default, as here). With ``pgd_at*`` the last forward is the adversarial batch.

- :class:`CleanBNForward` (``lrnas: {bn_clean_forward: true}``): the official
  ``adv_train.py:106`` runs ``logits = model(input)`` on the clean batch in training mode before
  the adversarial loss (its output only feeds the logged accuracy), so the BatchNorm running
  statistics are updated by the clean *and* the adversarial batch of every step. prunekit's
  losses do not (default, as for every pruned model); the option reproduces it (a train-mode,
  no-grad clean forward: the same running-statistics update, no effect on the gradient).

The official ``trades_loss`` is broken (it unpacks two outputs from a model returning one and
computes the KL on ``x_natural`` twice); prunekit's own ``trades`` / ``mart`` are used for
TRADES / MART training instead (docs/search.md).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.losses.base import official_start_attack
from prunekit.losses.pgd_at import PGDAT
from prunekit.registry import LOSSES

__all__ = ["PGDATNormal", "clip_gradients", "DropPathSchedule", "WithAuxiliary",
           "CleanBNForward", "strip_auxiliary"]


@LOSSES.register("pgd_at_normal")
class PGDATNormal(PGDAT):
    """PGD-AT with the official LRNAS / TRADES-code start ``x + 0.001 N(0, 1)`` (see the module
    docstring); otherwise identical to ``pgd_at``."""

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return official_start_attack(model, x, y, PGD(self.eps, self.step_size, self.steps,
                                                      start="normal"))


def clip_gradients(optimizer: torch.optim.Optimizer, params: Iterable[Tensor],
                   max_norm: float) -> Any:
    """Clip the global gradient norm of ``params`` to ``max_norm`` before every step of
    ``optimizer``; returns the hook handle."""
    params = list(params)

    def hook(_opt: Any, _args: Any, _kwargs: Any) -> None:
        nn.utils.clip_grad_norm_(params, max_norm)

    return optimizer.register_step_pre_hook(hook)


class DropPathSchedule:
    """An LR scheduler wrapper that also sets ``model.drop_path_prob = p * e / epochs`` for the
    coming epoch ``e`` (after construction, every ``step()`` and ``load_state_dict()``)."""

    def __init__(self, scheduler: Any, model: nn.Module, p: float, epochs: int) -> None:
        self.scheduler, self.model, self.p, self.epochs = scheduler, model, float(p), int(epochs)
        self._apply()

    def _apply(self) -> None:
        epoch = int(getattr(self.scheduler, "last_epoch", 0))
        self.model.drop_path_prob = self.p * min(epoch, self.epochs) / max(self.epochs, 1)

    def step(self) -> None:
        self.scheduler.step()
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)
        self._apply()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scheduler, name)


class WithAuxiliary:
    """``loss(model, x, y)`` plus ``weight * CE(model.aux_logits, y)`` when the network produced
    auxiliary logits in its last (training-mode) forward."""

    def __init__(self, loss: Callable[..., tuple[Tensor, dict[str, float]]], model: nn.Module,
                 weight: float) -> None:
        self.loss, self.model, self.weight = loss, model, float(weight)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        value, stats = self.loss(model, x, y)
        aux = getattr(self.model, "aux_logits", None)
        if aux is not None and self.weight > 0:
            aux_loss = F.cross_entropy(aux.float(), y)
            value = value + self.weight * aux_loss
            stats = {**stats, "aux_loss": float(aux_loss.detach()),
                     "loss": float(value.detach())}
        return value, stats

    def __getattr__(self, name: str) -> Any:
        # the wrapped loss' training-loop hooks (replays, begin_epoch, end_epoch, ...)
        if name == "loss":
            raise AttributeError(name)
        return getattr(self.loss, name)

    def __repr__(self) -> str:
        return f"WithAuxiliary({self.loss!r}, weight={self.weight:g})"


class CleanBNForward:
    """``loss(model, x, y)`` after a training-mode, no-grad forward of the clean batch (official
    ``adv_train.py:106``: BN running statistics see the clean batch too)."""

    def __init__(self, loss: Callable[..., tuple[Tensor, dict[str, float]]]) -> None:
        self.loss = loss

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        was = model.training
        model.train()
        with torch.no_grad():
            model(x)
        model.train(was)
        return self.loss(model, x, y)

    def __repr__(self) -> str:
        return f"CleanBNForward({self.loss!r})"


def strip_auxiliary(model: nn.Module) -> nn.Module:
    """Remove the auxiliary head after training (it is not part of the evaluated network nor of
    the official parameter count); the model's spec is updated so it still rebuilds."""
    if getattr(model, "auxiliary_head", None) is not None:
        model.auxiliary_head = None
        spec = getattr(model, "prunekit_spec", None)
        if isinstance(spec, dict):
            spec["auxiliary"] = False
    return model
