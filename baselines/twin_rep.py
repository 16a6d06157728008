"""Twin-Rep: adversarially robust sparse networks by weight re-parametrisation (``twin-rep``).

Li, Qiu, Zhang, Guo, Cheng, *Learning Adversarially Robust Sparse Networks via Weight
Reparameterization*, AAAI 2023; official code UCAS-LCH/Twin-Rep at b35cda3.

Sparse adversarial training **from scratch** (``needs_pretrain = False``; official train.py:301-344
trains one model for ``--epochs`` 100 with no dense pretraining): every pruned layer's weight is
re-parametrised as ``W_eff = W * U * M`` (:class:`baselines.twin_rep_core.TwinWeight`, official
models/layers.py:9-60), both factors train with the adversarial loss and the same weight decay
(official ``optim.SGD(model.parameters(), ...)``, train.py:305: the implicit L1 term), and at the
pruning epoch (``--pruning-epoch`` 10, train.py:316-323) one global magnitude prune on
``|W * U|`` over all pruned layers sets ``M`` (``unstructured_pruning``, train.py:216-261).
Training then goes on with the mask fixed. :meth:`TwinRep.finalize` folds ``W * U * M`` into a
plain weight (official model_utils.py:91-95) and bakes ``M`` as prunekit's fixed weight mask, so
fine-tuning and export see an ordinary conv / linear layer with identical outputs.

In prunekit the prune stage is the whole sparse training: give it the official epochs and
schedule (benchmarks/grids/paper-twinrep-cifar10.yaml); the fine-tune stage (plain weights,
mask fixed) is optional.

Deviations (docs/baselines.md, Twin-Rep):

* layers: by default the stem conv and the classifier are neither re-parametrised nor pruned
  (prunekit's convention); ``include_stem`` / ``include_classifier`` give the official set
  (every conv and linear layer is a ``TwinConv`` / ``TwinLinear``);
* kept count: exactly ``round((1 - sparsity) * N)`` weights by a global top-k
  (:func:`prunekit.pruning.masking.global_topk_masks`, at least one per layer) instead of the
  official ``kthvalue`` threshold with index ``round(N * sparsity) + 1`` and a strict ``<``
  (one weight more pruned, ties at the threshold kept);
* if the prune stage ends before the pruning epoch, :meth:`finalize` prunes then (logged, and
  ``summary()["pruned_after_epochs"]`` says ``"finalize"``; the pipeline's finalize probe
  measures what that changed);
* the official code selects the checkpoint with the best test accuracy (train.py:333-341);
  prunekit keeps the last epoch, as for every method; its undefined ``args.score_decay`` in the
  checkpoint name (train.py:308, a NameError) has no counterpart here.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.base import Pruner
from prunekit.pruning.masking import apply_weight_masks, global_topk_masks

from baselines._common import select_layers
from baselines.twin_rep_channel import TwinRepChannel  # noqa: F401  (entry-point path)
from baselines.twin_rep_core import TwinWeight, check_pruning_epoch, fold, prune_due, reparametrize

__all__ = ["TwinRep", "TwinRepChannel"]

log = logging.getLogger(__name__)


class TwinRep(Pruner):
    """Twin-Rep unstructured pruning (``twin-rep``): twin weights ``W * U``, one-shot global
    magnitude prune of ``|W * U|`` at the pruning epoch, then masked training.

    Args:
        sparsity: fraction of the pruned layers' weights removed (official ``--pruning``).
        pruning_epoch: 1-based epoch of the prune stage at whose start the prune happens
            (official ``--pruning-epoch``, default 10): after ``pruning_epoch - 1`` dense epochs;
            1 = at attach (on the initialisation).
        include_stem / include_classifier: also re-parametrise and prune the first conv / the
            last linear layer (both True = the official layer set).

    Example::

        pruner = PRUNERS.build("twin-rep", sparsity=0.9, pruning_epoch=10)
        pruner.attach(model, x[:2])              # a freshly initialised model
        opt = torch.optim.SGD(pruner.param_groups(model), lr=0.1, momentum=0.9, weight_decay=2e-4)
        ...                                      # 100 adversarial epochs, on_epoch_end each
        model = pruner.finalize(model)           # plain weights W*U*M, fixed mask
    """

    granularity = "weight"
    needs_pretrain = False
    lossless_finalize = True
    contract_tolerance = 0.005                  # exact global count
    contract_hparams = {"pruning_epoch": 2}     # prune after the contract's first epoch

    def __init__(self, sparsity: float, *, pruning_epoch: int = 10, include_stem: bool = False,
                 include_classifier: bool = False) -> None:
        super().__init__(sparsity)
        self.pruning_epoch = check_pruning_epoch(pruning_epoch)
        self.include_stem = bool(include_stem)
        self.include_classifier = bool(include_classifier)
        self._modules: dict[str, nn.Module] = {}
        self._twins: dict[str, TwinWeight] = {}
        self._pruned_after: int | str | None = None
        self._summary: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Re-parametrise every pruned layer as ``W * U * M`` (``M`` = 1); prune now if
        ``pruning_epoch`` is 1."""
        if self._twins:
            raise RuntimeError("TwinRep.attach called twice; build a new pruner per model")
        self._modules = select_layers(model, include_stem=self.include_stem,
                                      include_classifier=self.include_classifier)
        self._twins = {n: pm for n, pm in reparametrize(self._modules, "twin").items()
                       if isinstance(pm, TwinWeight)}
        self.model = model
        log.info("twin-rep: %d layers re-parametrised, prune to %.3f at epoch %d",
                 len(self._twins), self.sparsity, self.pruning_epoch)
        if self.pruning_epoch <= 1:
            self.prune(0)

    def on_epoch_end(self, epoch: int) -> None:
        if self._pruned_after is None and prune_due(self.pruning_epoch, epoch):
            self.prune(epoch + 1)

    def twin_products(self) -> dict[str, Tensor]:
        """``W * U`` of every pruned layer (the prune criterion's magnitudes; no mask)."""
        return {n: (self._modules[n].parametrizations.weight.original * pm.aux).detach()
                for n, pm in self._twins.items()}

    def prune(self, after_epochs: int | str) -> None:
        """The one-shot global magnitude prune of ``|W * U|`` (official
        ``unstructured_pruning``, layer type ``twin``); sets every layer's mask ``M``."""
        prods = self.twin_products()
        masks = global_topk_masks({n: p.abs() for n, p in prods.items()}, self.sparsity)
        total = sum(float(p.pow(2).sum()) for p in prods.values())
        removed = sum(float(p[~masks[n]].pow(2).sum()) for n, p in prods.items())
        kept = [prods[n][masks[n]].abs() for n in prods]
        with torch.no_grad():
            for n, pm in self._twins.items():
                pm.mask.copy_(masks[n].to(pm.mask))
        self._pruned_after = after_epochs
        self._summary = {"pruned_after_epochs": after_epochs,
                         "threshold": float(torch.cat(kept).min()) if kept else 0.0,
                         "removed_norm_fraction": removed / max(total, 1e-30)}
        log.info("twin-rep: pruned after %s epochs: %s", after_epochs, self._summary)

    def masks(self) -> dict[str, Tensor]:
        return {n: pm.mask.bool().clone() for n, pm in self._twins.items()}

    def finalize(self, model: nn.Module) -> nn.Module:
        """Fold ``W * U * M`` into a plain weight and bake ``M`` as a fixed weight mask (prunes
        first if the pruning epoch was never reached)."""
        if self._pruned_after is None:
            log.warning("twin-rep: the prune stage ended before pruning epoch %d; pruning at "
                        "finalize", self.pruning_epoch)
            self.prune("finalize")
        masks = self.masks()
        fold(self._modules)
        apply_weight_masks(model, masks)
        self._modules, self._twins, self.model = {}, {}, None
        return model

    def summary(self) -> dict[str, Any]:
        """``pruned_after_epochs`` (dense epochs before the prune, or ``"finalize"``),
        ``threshold`` (smallest kept ``|W * U|``), ``removed_norm_fraction`` (share of
        ``sum (W * U)^2`` the prune removed; reference at the initialisation, two independent
        uniform factors: 3.9 % at 50 % sparsity, 53 % at 90 %; one uniform weight: 12.5 % and
        73 %: lower values mean the training concentrated the magnitude on the kept weights)."""
        return dict(self._summary)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The masks and when the prune happened (``W``, ``U`` and ``M`` are also model state)."""
        return {"pruned_after": self._pruned_after, "summary": dict(self._summary),
                "masks": self.masks()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        masks = state.get("masks", {})
        if set(masks) != set(self._twins):
            raise ValueError(f"twin-rep state has layers {sorted(masks)}, the attached model "
                             f"has {sorted(self._twins)}")
        with torch.no_grad():
            for n, m in masks.items():
                self._twins[n].mask.copy_(m.to(self._twins[n].mask))
        self._pruned_after = state.get("pruned_after")
        self._summary = dict(state.get("summary") or {})
