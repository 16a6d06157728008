"""The settle phase of a gate search (issue 19): the last ``settle_epochs`` epochs of D2BC's
search train with the gates *projected* onto the cost budget.

Why: on the adversarial fmnist-structured recipe the free augmented-Lagrangian search oscillates
around its MACs target (gates flip in blocks; measured on seed 0 at a 0.5 target: the search
ended at 0.378 with the dual back near 0), so where it stops is a draw and calibration at
finalize then made the cut on weights that never trained with it (10.5 % of the probe's
predictions changed). Projecting for the last epoch(s) is the standard projected-gradient
answer to a hard budget: the forward pass uses the budget-feasible kept set with the largest
gate values (:func:`prunekit.pruning.channel.select_by_macs`, MACs-greedy, the same ranking
calibration uses), the gates keep learning through the straight-through estimator under the
adversarial loss *and* the constraint term on the free gates (so ``m`` keeps ranking the
channels instead of saturating at the clamp), and the
weights co-adapt with the final architecture, so finalize is a no-op on the predictions. The
free search's own reduction is still reported (``free_reduction_at_settle``,
``free_reduction_end``) so a reader sees how close the unconstrained dynamics came.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from torch import Tensor

__all__ = ["Settler"]

log = logging.getLogger(__name__)


class Settler:
    """Bookkeeping of the settle phase: when it starts (``settle_epochs`` before the end of a
    prune stage of ``stage_epochs``) and the current projected keep masks.

    ``project`` returns the budget-feasible keep masks (bool, one per group) from the current
    gate values; ``free_reduction`` the reduction of the unprojected gates.
    """

    def __init__(self, settle_epochs: int, project: Callable[[], list[Tensor]],
                 free_reduction: Callable[[], float]) -> None:
        self.settle_epochs = int(settle_epochs)
        self._project = project
        self._free = free_reduction
        self.stage_epochs: int | None = None
        self.active = False
        self.masks: list[Tensor] | None = None
        self.facts: dict[str, Any] = {}

    def begin_stage(self, epochs: int) -> None:
        """The prune stage has ``epochs`` epochs; a settle phase of at least all of them starts
        at once."""
        self.stage_epochs = int(epochs)
        if self.settle_epochs and self.settle_epochs >= self.stage_epochs and not self.active:
            self.start(0)

    def epoch_end(self, epoch: int) -> None:
        """After epoch ``epoch`` (0-based): start settling when ``settle_epochs`` remain."""
        if not self.settle_epochs or self.active:
            return
        if self.stage_epochs is None:
            if epoch == 0:
                log.warning("d2bc: settle_epochs=%d but the prune stage's length is unknown "
                            "(begin_stage was not called); no settle phase",
                            self.settle_epochs)
            return
        if epoch + 1 >= self.stage_epochs - self.settle_epochs:
            self.start(epoch + 1)

    def start(self, epoch: int) -> None:
        free = self._free()
        self.active = True
        self.facts = {"settle_epochs": self.settle_epochs, "settled_at_epoch": epoch,
                      "free_reduction_at_settle": round(free, 6)}
        self.refresh()
        log.info("d2bc: settle phase from epoch %d (free search at %.4f reduction)", epoch, free)

    def refresh(self) -> None:
        """Recompute the projection (after every optimizer step while settling)."""
        if self.active:
            self.masks = [k.detach() for k in self._project()]

    def finish(self) -> dict[str, Any]:
        """Facts for the pruner's summary (empty when no settle phase ran)."""
        if self.active:
            self.facts["free_reduction_end"] = round(self._free(), 6)
        return dict(self.facts)

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active, "facts": dict(self.facts)}

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        if not state:
            return
        self.active = bool(state.get("active", False))
        self.facts = dict(state.get("facts", {}))
        self.refresh()
