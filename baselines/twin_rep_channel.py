"""Twin-Rep structured: Channel-Rep weights and one-shot group-lasso filter pruning
(``twin-rep-channel``).

Li, Qiu, Zhang, Guo, Cheng, *Learning Adversarially Robust Sparse Networks via Weight
Reparameterization*, AAAI 2023; official code UCAS-LCH/Twin-Rep at b35cda3 (``--layer-type
channel --pruning-type structure``).

Sparse adversarial training from scratch (``needs_pretrain = False``). Every conv whose output
channels can be pruned (the convs of prunekit's dependency groups) is re-parametrised, by
default with Channel-Rep ``W_eff = A @ W`` (``reparam="channel"``, official models/layers.py:
62-115), or with the element-wise twin ``W * U`` (``reparam="twin"``, official
``--layer-type twin`` with structured pruning). At the pruning epoch (official
``--pruning-epoch`` 10, train.py:316-323) the channels are ranked by their group-lasso norm, the
L2 norm of the channel's effective filters (official ``group_lasso``, train.py:263-265), and the
lowest are removed globally (official ``structured_pruning``, train.py:267-299: one global
threshold over all layers, at least one filter kept per layer); training goes on with the channels
gated. :meth:`TwinRepChannel.finalize` folds ``W_eff`` into plain weights and removes the gated
channels physically (:class:`prunekit.pruning.channel.ChannelPruner`; the fixed keep masks and
their state come from ``baselines._common.FixedChannelSelection``), so the compacted model is an
ordinary smaller network with the masked model's outputs.

Deviations (docs/baselines.md, Twin-Rep):

* a channel is one channel of a torch-pruning dependency group: its group-lasso norm is the L2
  norm over the filters of *every* coupled conv (a ResNet residual stream: each block's conv2
  and the shortcut), and it is removed from all of them and from every consumer (prunekit's
  channel gating). The official code ranks and zeroes each conv's filters separately (a residual
  channel zeroed in one conv still flows through the others) and masks only the filter, so the
  BatchNorm shift of a "pruned" channel still reaches the next layer;
* ``sparsity`` is the analytic conv + linear MACs reduction (``target="params"``: parameters),
  reached by keeping channels in decreasing norm order under that budget
  (:func:`prunekit.pruning.channel.select_by_macs`) instead of a fraction of the filter count;
* the stem is excluded unless ``include_stem`` (the classifier's outputs are never pruned; the
  official code also re-parametrises the stem and the linear layers, which are not pruned here
  and stay plain);
* optional explicit group lasso: ``group_lasso = lambda > 0`` adds ``lambda * sum_c ||W_eff,c||_2``
  over every group channel to the loss until the prune (an extension; the official objective,
  ``0.0``, relies on the implicit regularisation of the re-parametrisation and weight decay);
* a grouped conv gets the element-wise twin even with ``reparam="channel"``;
* if the prune stage ends before the pruning epoch, :meth:`finalize` prunes then (logged;
  ``summary()["pruned_after_epochs"]`` is ``"finalize"``).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.channel import select_by_macs
from prunekit.pruning.groups import ChannelGroups, channel_norms

from baselines._common import FixedChannelSelection, check_choice
from baselines.twin_rep_core import (REPARAMS, check_pruning_epoch, fold, prune_due,
                                     reparametrize)

__all__ = ["TwinRepChannel"]

log = logging.getLogger(__name__)


class TwinRepChannel(FixedChannelSelection):
    """Twin-Rep / Channel-Rep with one-shot group-lasso channel pruning (``twin-rep-channel``).

    Args:
        sparsity: target fraction of conv + linear MACs removed (``target="params"``:
            parameters).
        pruning_epoch: 1-based epoch of the prune stage at whose start the prune happens
            (official ``--pruning-epoch``, default 10); 1 = at attach.
        reparam: ``"channel"`` (Channel-Rep ``A @ W``, the paper's structured variant) or
            ``"twin"`` (element-wise ``W * U``).
        group_lasso: coefficient of the explicit group-lasso term until the prune (0 =
            official).
        include_stem / include_classifier / target: see
            :class:`~prunekit.pruning.channel.ChannelPruner`.

    Example::

        pruner = PRUNERS.build("twin-rep-channel", sparsity=0.5, include_stem=True)
        pruner.attach(model, x[:2])          # a freshly initialised model
        ...                                  # adversarial training, on_epoch_end each epoch
        small = pruner.finalize(model)       # plain weights, physically fewer channels
    """

    needs_pretrain = False
    lossless_finalize = True
    contract_hparams = {"pruning_epoch": 2}

    def __init__(self, sparsity: float, *, pruning_epoch: int = 10, reparam: str = "channel",
                 group_lasso: float = 0.0, **kwargs: Any) -> None:
        super().__init__(sparsity, **kwargs)
        self.pruning_epoch = check_pruning_epoch(pruning_epoch)
        self.reparam = check_choice("reparam", reparam, REPARAMS)
        lam = self._number(group_lasso, f"group_lasso must be a number >= 0, got {group_lasso!r}")
        self._check(lam >= 0.0, f"group_lasso must be >= 0, got {lam}")
        self.group_lasso = lam
        self._modules: dict[str, nn.Module] = {}
        self._pruned_after: int | str | None = None
        self._summary: dict[str, Any] = {}

    # -- ChannelPruner hooks --------------------------------------------------------------------
    def init_gates(self, groups: ChannelGroups) -> None:
        """Re-parametrise every group conv (after the graph is traced), all channels kept."""
        named = dict(groups.model.named_modules())
        names = list(dict.fromkeys(n for g in groups for n in g.convs))
        self._modules = {n: named[n] for n in names}
        reparametrize(self._modules, self.reparam)
        device = next(groups.model.parameters()).device
        self.keep = [torch.ones(g.size, dtype=torch.bool, device=device) for g in groups]
        log.info("twin-rep-channel: %d convs re-parametrised (%s), %d groups", len(names),
                 self.reparam, len(groups))
        if self.pruning_epoch <= 1:
            self.prune(0)

    def group_scores(self) -> list[Tensor]:
        return self.group_norms()

    # -- Twin-Rep -------------------------------------------------------------------------------
    def group_norms(self, detach: bool = True) -> list[Tensor]:
        """Group-lasso norm of every channel of every group: the L2 norm of its effective
        filters ``W_eff`` over all the group's convs (official ``group_lasso``)."""
        assert self.groups is not None, "attach() first"
        weights = {n: m.weight for n, m in self._modules.items()}
        return channel_norms(self.groups, weights, p=2, detach=detach)

    def penalty(self) -> Tensor:
        """``group_lasso * sum of the channels' group-lasso norms`` until the prune, else 0."""
        if self.group_lasso == 0.0 or self._pruned_after is not None or self.groups is None:
            return torch.zeros(())
        return self.group_lasso * sum(n.sum() for n in self.group_norms(detach=False))

    def on_epoch_end(self, epoch: int) -> None:
        if self._pruned_after is None and prune_due(self.pruning_epoch, epoch):
            self.prune(epoch + 1)

    def prune(self, after_epochs: int | str) -> None:
        """One-shot global prune of the lowest group-lasso norms at the MACs (params) target."""
        assert self.groups is not None, "attach() first"
        norms = self.group_norms()
        keep = select_by_macs(self.groups, norms, self.sparsity, cost=self.target)
        device = self.keep[0].device if self.keep else norms[0].device
        self.keep = [k.to(device) for k in keep]
        total = sum(float(n.pow(2).sum()) for n in norms)
        removed = sum(float(n.cpu()[~k.cpu()].pow(2).sum()) for n, k in zip(norms, keep))
        self._pruned_after = after_epochs
        self._summary = {"pruned_after_epochs": after_epochs,
                         "removed_norm_fraction": removed / max(total, 1e-30),
                         "search_reduction": round(self.reduction(), 6)}
        log.info("twin-rep-channel: pruned after %s epochs, kept %s of %s (%s)", after_epochs,
                 [int(k.sum()) for k in keep], self.groups.sizes(), self._summary)

    def finalize(self, model: nn.Module) -> nn.Module:
        """Fold ``W_eff`` into plain weights, then remove the gated channels physically
        (prunes first if the pruning epoch was never reached)."""
        if self.groups is None or model is not self.groups.model:
            raise ValueError("finalize() must be given the model passed to attach()")
        if self._pruned_after is None:
            log.warning("twin-rep-channel: the prune stage ended before pruning epoch %d; "
                        "pruning at finalize", self.pruning_epoch)
            self.prune("finalize")
        fold(self._modules)
        self._modules = {}
        return super().finalize(model)

    def summary(self) -> dict[str, Any]:
        """``pruned_after_epochs`` (dense epochs before the prune, or ``"finalize"``),
        ``removed_norm_fraction`` (share of the summed squared group-lasso norms removed),
        ``search_reduction`` (analytic reduction of the kept channels)."""
        return {"reparam": self.reparam, **self._summary}

    def state_dict(self) -> dict[str, Any]:
        """Kept channels and when the prune happened (``W`` and ``A`` / ``U`` are model state)."""
        return {**super().state_dict(), "pruned_after": self._pruned_after,
                "summary": dict(self._summary)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._pruned_after = state.get("pruned_after")
        self._summary = dict(state.get("summary") or {})
