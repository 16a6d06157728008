"""``ChannelPruner``: the shared machinery of every channel-level method (D2BC, hydra-channel,
ADMM filter).

A subclass creates its per-group state in :meth:`ChannelPruner.init_gates` and returns, from
:meth:`ChannelPruner.group_gates`, one gate tensor per dependency group (length = the group's
channels; forward values 0/1, differentiable e.g. through a straight-through estimator). The base
class multiplies every gated channel into the in-channel weights of the layers that consume it
(:mod:`prunekit.pruning.gating`), so a gated channel is exactly zero everywhere it is consumed
while its gate still gets the training loss's gradient (a closed channel can re-open);
:meth:`finalize` removes the gated channels physically with torch-pruning and returns a smaller
dense model whose outputs equal the masked model's.

Guarantee: a group never loses all its channels. If a subclass's gate is zero everywhere in a
group, the channel with the highest :meth:`group_scores` value is kept (in the forward pass *and*
at finalize, so masked and compacted models agree).
"""
from __future__ import annotations

import abc
import logging
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from prunekit.pruning.base import Pruner
from prunekit.pruning.compaction import compact
from prunekit.pruning.gating import ChannelGating
from prunekit.pruning.groups import ChannelGroups, build_groups

__all__ = ["ChannelPruner", "select_by_macs", "group_module_masks", "TARGETS"]

#: what a channel pruner's ``sparsity`` can target: conv + linear MACs or parameters
TARGETS = ("macs", "params")

log = logging.getLogger(__name__)


class ChannelPruner(Pruner):
    """Base for gate/score-per-channel pruners.

    Args:
        sparsity: target fraction of the conv + linear MACs removed (``1 - MACs/MACs_dense``),
            or with ``target="params"`` of the parameters (``1 - params/params_dense``, the
            compacted model's count: what ``measure`` reports as ``nonzero_params``).
        include_stem: also prune the group containing the first conv's output channels.
        include_classifier: do not ignore the last linear (matters for linear roots only).
        target: ``"macs"`` (default) or ``"params"``: what ``sparsity`` removes
            (:attr:`sparsity_target` and the CSV's ``sparsity_target`` follow it).

    Subclass hooks: :meth:`init_gates` (create parameters/buffers), :meth:`group_gates`
    (abstract), optionally :meth:`group_scores`, :meth:`param_groups`, :meth:`penalty`,
    :meth:`state_dict` / :meth:`load_state_dict`.
    """

    granularity: ClassVar[str] = "channel"

    def __init__(self, sparsity: float, *, include_stem: bool = False,
                 include_classifier: bool = False, target: str = "macs",
                 **hparams: Any) -> None:
        super().__init__(sparsity, **hparams)
        self._check(target in TARGETS,
                    f"target must be one of: {', '.join(TARGETS)}; got {target!r}")
        self.target = target
        if target == "params":
            self.sparsity_target = "params"
        self.include_stem = bool(include_stem)
        self.include_classifier = bool(include_classifier)
        self.groups: ChannelGroups | None = None
        self._gating: ChannelGating | None = None

    # -- subclass interface ---------------------------------------------------------------------
    def init_gates(self, groups: ChannelGroups) -> None:
        """Create the per-group state (called by :meth:`attach` after the groups are built)."""

    @abc.abstractmethod
    def group_gates(self) -> list[Tensor]:
        """One gate per group, shape ``[group.size]``: forward values 0 (removed) or 1 (kept),
        differentiable w.r.t. the pruner's parameters if the method learns them."""

    def group_scores(self) -> list[Tensor]:
        """Per-channel importance used to keep one channel of an all-zero group (default: the
        gate values)."""
        return [g.detach() for g in self.group_gates()]

    # -- lifecycle ------------------------------------------------------------------------------
    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Build the dependency groups, let the subclass create its gates, install the hooks."""
        self.remove_hooks()
        self.model = model
        self.groups = build_groups(model, example_inputs, include_stem=self.include_stem,
                                   include_classifier=self.include_classifier)
        if not len(self.groups):
            log.warning("%s: the model has no prunable channel group", type(self).__name__)
        self.init_gates(self.groups)
        self._install_hooks()

    def _install_hooks(self) -> None:
        assert self.groups is not None and self.model is not None
        self._gating = ChannelGating(self.groups, self.current_gates)
        self._gating.install()

    def remove_hooks(self) -> None:
        """Remove every hook this pruner installed (needed before ``deepcopy`` / compaction)."""
        if self._gating is not None:
            self._gating.remove()
        self._gating = None

    def current_gates(self) -> list[Tensor]:
        """:meth:`group_gates` with the keep-at-least-one-channel guarantee applied."""
        gates = self.group_gates()
        out = []
        scores = None
        for gi, g in enumerate(gates):
            if bool((g.detach() != 0).any()):
                out.append(g)
                continue
            if scores is None:
                scores = self.group_scores()
            one = torch.zeros_like(g, dtype=torch.bool)
            one[int(torch.argmax(scores[gi]))] = True
            out.append(torch.where(one, torch.ones_like(g), g))
        return out

    def keep_masks(self) -> list[Tensor]:
        """Hard keep masks (bool), one per group, as used by the forward pass and finalize."""
        with torch.no_grad():
            return [g.detach() != 0 for g in self.current_gates()]

    def masks(self) -> dict[str, Tensor]:
        """Keep masks over the out-channels of every conv / norm module of every group."""
        if self.groups is None:
            return {}
        return group_module_masks(self.groups, self.keep_masks())

    def macs(self, gates: Sequence[Tensor] | None = None) -> Tensor:
        """Analytic conv + linear MACs with ``gates`` (default: the current gates; differentiable)."""
        assert self.groups is not None, "attach() first"
        return self.groups.macs(self.current_gates() if gates is None else gates)

    def macs_reduction(self) -> float:
        """``1 - MACs(current hard gates) / MACs_dense`` from the analytic count."""
        assert self.groups is not None, "attach() first"
        with torch.no_grad():
            kept = self.groups.macs([k.float() for k in self.keep_masks()])
        return 1.0 - float(kept) / self.groups.dense_macs

    def reduction(self) -> float:
        """``1 - cost(current hard gates) / cost_dense`` in the pruner's ``target`` (MACs or
        parameters), from the analytic count."""
        assert self.groups is not None, "attach() first"
        with torch.no_grad():
            kept = self.groups.cost(self.target, [k.float() for k in self.keep_masks()])
        return 1.0 - float(kept) / self.groups.dense_cost(self.target)

    def finalize(self, model: nn.Module) -> nn.Module:
        """Remove the hooks and physically remove every gated channel (in place). Returns the
        compacted model (the same object), with no pruner state attached to it."""
        if self.groups is None or model is not self.groups.model:
            raise ValueError("finalize() must be given the model passed to attach()")
        keep = self.keep_masks()
        self.remove_hooks()
        compacted = compact(self.groups, keep)
        self.groups = None
        return compacted


def group_module_masks(groups: ChannelGroups, keeps: Sequence[Tensor]) -> dict[str, Tensor]:
    """Per-group channel keep masks -> keep masks over the out-channels of every conv / norm
    module of every group (the ``masks()`` of a channel pruner)."""
    out: dict[str, Tensor] = {}
    named = dict(groups.model.named_modules())
    for g, keep in zip(groups, keeps):
        for name in (*g.convs, *g.norms):
            mod = named[name]
            n = mod.weight.shape[0] if getattr(mod, "weight", None) is not None else g.size
            out[name] = g.site_gate(name, keep.float(), n).bool()
    return out


def select_by_macs(groups: ChannelGroups, scores: Sequence[Tensor], target_reduction: float,
                   min_keep: int = 1, multiple_of: int = 1,
                   tiebreak: Sequence[Tensor] | None = None, cost: str = "macs") -> list[Tensor]:
    """Keep masks that hit ``1 - MACs/MACs_dense ~= target_reduction`` (analytic count) by
    keeping channels in decreasing score order (scores comparable across groups).

    Channels are ranked within their group and cut into blocks of ``multiple_of`` consecutive
    ranks (block score = its best channel's score), so every group keeps a multiple of
    ``multiple_of`` channels (or all of them): CPU kernels are much faster for widths that are
    multiples of 8 (DESIGN.md facts). Each group keeps at least ``max(min_keep, one block)``.
    Blocks are added back globally by score while the MACs stay within the budget
    ``(1 - target) * MACs_dense`` (binary search on the prefix length; MACs grow monotonically
    with the kept set), so the analytic reduction is >= the target unless the floor is above it.
    Equal scores are ordered by ``tiebreak`` (higher first; e.g. D2BC's calibration ranks by
    gate value, then filter norm: :func:`prunekit.pruning.groups.channel_norms`), never by
    group or channel position unless those are equal too.
    Used by score-based channel methods and by D2BC's calibration. ``cost="params"``: the
    same with the parameter count (:meth:`ChannelGroups.params`) in place of the MACs.
    """
    if multiple_of < 1 or min_keep < 1:
        raise ValueError("select_by_macs: min_keep and multiple_of must be >= 1")
    budget = (1.0 - target_reduction) * groups.dense_cost(cost)
    keep = [torch.zeros(g.size, dtype=torch.bool) for g in groups]
    blocks: list[tuple[float, float, int, list[int]]] = []
    for gi, s in enumerate(scores):
        s = s.detach().float().cpu()
        t = (torch.zeros_like(s) if tiebreak is None
             else tiebreak[gi].detach().float().cpu().reshape(s.shape))
        # lexicographic (score, tiebreak), both descending: stable sort by the minor key first
        by_t = torch.argsort(t, descending=True, stable=True)
        order = by_t[torch.argsort(s[by_t], descending=True, stable=True)].tolist()
        first = max(min_keep, multiple_of)
        for c in order[:first]:
            keep[gi][c] = True
        rest = order[first:]
        for b in range(0, len(rest), multiple_of):
            chunk = rest[b:b + multiple_of]
            blocks.append((float(s[chunk[0]]), float(t[chunk[0]]), gi, chunk))
    blocks.sort(key=lambda b: (-b[0], -b[1]))

    def kept_with(n: int) -> list[Tensor]:
        trial = [k.clone() for k in keep]
        for _, _, gi, chunk in blocks[:n]:
            trial[gi][chunk] = True
        return trial

    lo, hi = 0, len(blocks)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if float(groups.cost(cost, [k.float() for k in kept_with(mid)])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return kept_with(lo)
