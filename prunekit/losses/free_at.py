"""Free adversarial training (Shafahi et al., "Adversarial training for free!", NeurIPS 2019,
Alg. 1), as in HYDRA's ``trainer/freeadv.py`` (inspire-group/hydra, lines 31-84).

Every minibatch is replayed ``m`` times (:attr:`AdvLoss.replays`, run by the training loop);
each replay is one forward/backward that gives the weight gradient (an optimizer step) and the
input gradient (an FGSM step on the carried perturbation) at once, so ``m`` replays cost ``m``
passes where PGD-AT with ``K`` steps costs ``K + 2`` per step. Budget convention (Shafahi et
al. Sec. 4; HYDRA ``train_imagenet.py:197``, ``epochs = ceil(epochs / n_repeats)``): with ``m``
replays run ``ceil(E / m)`` epochs to match ``E`` epochs of natural training in optimizer steps
and passes (docs/training.md, "Fast adversarial training").
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from prunekit.losses.base import AdvLoss, adv_ce_outer
from prunekit.registry import LOSSES

__all__ = ["FreeAT"]


@LOSSES.register("free_at", aliases=("free-at", "free"))
class FreeAT(AdvLoss):
    """Free AT: cross-entropy on ``clamp(x + delta, 0, 1)`` with ``delta`` carried over.

    Per call (one replay): ``x_adv = clamp(x + delta[:B], 0, 1)`` with ``delta`` a leaf that
    requires grad, loss ``CE(f(x_adv), y)`` in the caller's mode (train mode in ``fit``: the one
    forward serves both the attack and the weight update, as in the official code). The loop's
    ``backward`` leaves ``grad_delta`` on the leaf; at the next call (the next replay, or the next
    minibatch) ``delta <- clamp(delta + step_size * sign(grad_delta), -eps, eps)`` first
    (freeadv.py:80-82: ``fgsm(grad, epsilon)``, so ``step_size`` defaults to ``eps``). ``delta``
    is one ``[B, ...]`` buffer shared by the minibatches of an epoch (a smaller last batch uses
    its first rows; freeadv.py:62, 81) and is reset to zero at every epoch start (the official
    code allocates it in its per-epoch ``train``; here :meth:`begin_epoch`, which also keeps
    resume exact).

    Args:
        eps: L-inf radius.
        step_size: FGSM step on the perturbation; default ``eps``.
        replays: ``m``, replays of each minibatch (HYDRA ``--n-repeats``, default 4).

    Deliberate deviations: none in the update; ``attack`` alone (the contract's inner
    maximisation) returns the current ``clamp(x + delta)`` after applying a pending step, without
    a forward. Stats: ``loss`` and ``adv_acc`` (accuracy of the training forward); no
    ``clean_acc`` (:attr:`clean_stats` False: the method never sees the clean batch).
    """

    clean_stats = False

    def __init__(self, eps: float, step_size: float | None = None, replays: int = 4) -> None:
        if isinstance(replays, bool) or not isinstance(replays, int) or replays < 1:
            raise ValueError(f"replays must be an int >= 1, got {replays!r}")
        super().__init__(eps, step_size=eps if step_size is None else step_size, steps=1,
                         beta=0.0)
        self.replays = int(replays)
        self._delta: Tensor | None = None   # the carried perturbation (no grad)
        self._leaf: Tensor | None = None    # the last call's leaf, whose .grad backward fills

    def begin_epoch(self, epoch: int, history: list[dict[str, Any]]) -> None:
        self._delta, self._leaf = None, None

    def _current(self, x: Tensor) -> Tensor:
        """Apply the pending FGSM step, then the perturbation rows for ``x`` (grown with zeros
        if this batch is larger than every earlier one of the epoch)."""
        leaf, self._leaf = self._leaf, None
        with torch.no_grad():
            if leaf is not None and leaf.grad is not None and self._delta is not None:
                rows = leaf.shape[0]
                self._delta[:rows] += self.step_size * leaf.grad.sign()
                self._delta.clamp_(-self.eps, self.eps)
            d = self._delta
            if d is None or d.shape[1:] != x.shape[1:] or d.device != x.device:
                d = torch.zeros_like(x.detach())
            elif d.shape[0] < x.shape[0]:
                d = torch.cat([d, torch.zeros_like(x.detach()[d.shape[0]:])])
            self._delta = d
        return d[:x.shape[0]]

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return (x.detach() + self._current(x)).clamp(0.0, 1.0).detach()

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        leaf = self._current(x).clone().requires_grad_(True)
        self._leaf = leaf
        return self.outer(model, x, (x.detach() + leaf).clamp(0.0, 1.0), y)

    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        return adv_ce_outer(model, x, x_adv, y)

    def __repr__(self) -> str:
        return f"FreeAT(eps={self.eps:.5g}, step_size={self.step_size:.5g}, replays={self.replays})"
