"""Random channel selection at the MACs target (``random-channel``): the control every learned
channel method must beat.

Each torch-pruning dependency group keeps the same fraction of its channels (calibrated once so
the analytic conv + linear MACs reduction matches ``sparsity``, as for hydra-channel and
admm-filter) and *which* channels are kept is drawn uniformly at random within the group
(``allocation="uniform"``, default). ``allocation="global"`` instead ranks every channel by an
i.i.d. U[0, 1] score across groups within the MAC budget (random per-group widths -- what D2BC's
calibration makes of its random initial gates when nothing is learned). The selection is fixed
at ``attach``; the prune stage then trains the masked network and ``finalize`` removes the
channels physically. The seed is the method's own stream, derived from (run seed,
"random-channel") unless given (:func:`prunekit.seeding.method_seed`; ``summary()``), so the
control never keeps the top-k of D2BC's initial gates of the same run seed (issue 19).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor

from prunekit.pruning.channel import select_by_macs
from prunekit.pruning.groups import ChannelGroups

from baselines._common import (FixedChannelSelection, check_choice, draw_seed, topk_count,
                               uniform_group_counts)

__all__ = ["RandomChannel"]

log = logging.getLogger(__name__)


class RandomChannel(FixedChannelSelection):
    """Uniformly random channels at the MACs target (``random-channel``).

    Args:
        sparsity: target fraction of conv + linear MACs removed.
        allocation: ``"uniform"`` (every group keeps the same fraction, random channels within
            it) or ``"global"`` (random scores ranked across groups).
        seed: selection seed; None = drawn from torch's generator at ``attach`` (run seed).
        include_stem / include_classifier / target: see
            :class:`~prunekit.pruning.channel.ChannelPruner` (``target="params"``: ``sparsity``
            is the parameter reduction).

    Example::

        pruner = PRUNERS.build("random-channel", sparsity=0.9)
    """

    def __init__(self, sparsity: float, *, allocation: str = "uniform", seed: int | None = None,
                 include_stem: bool = False, include_classifier: bool = False,
                 target: str = "macs") -> None:
        super().__init__(sparsity, include_stem=include_stem,
                         include_classifier=include_classifier, target=target)
        self.allocation = check_choice("allocation", allocation, ("uniform", "global"))
        self._check(seed is None or (isinstance(seed, int) and not isinstance(seed, bool)),
                    f"seed must be an integer or null, got {seed!r}")
        self.seed = seed
        self.init_seed: int | None = None

    def select(self, groups: ChannelGroups) -> list[Tensor]:
        self.init_seed = draw_seed(self.seed, "random-channel")
        gen = torch.Generator().manual_seed(self.init_seed)
        scores = [torch.rand(g.size, generator=gen) for g in groups]
        if self.allocation == "global":
            keep = select_by_macs(groups, scores, self.sparsity, cost=self.target)
        else:
            keep = [topk_count(s, k) for s, k in
                    zip(scores, uniform_group_counts(groups, self.sparsity, cost=self.target))]
        log.info("random-channel: kept %s of %s (seed %d)", [int(k.sum()) for k in keep],
                 groups.sizes(), self.init_seed)
        return keep

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "allocation": self.allocation, "init_seed": self.init_seed}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "init_seed": self.init_seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.init_seed = state.get("init_seed", self.init_seed)
