"""MAD, Masking Adversarial Damage (``mad``): Lee, Kim, Ro, CVPR 2022; official code
ByungKwanLee/Masking-Adversarial-Damage (compute_saliency.py, main_mad_pretrain.py,
pruner/kfac_MAD_pruner.py).

On an adversarially pretrained model, a calibration pass (:meth:`Pruner.calibrate`) computes an
*adversarial saliency* for every weight (baselines/mad_kfac.py: masks optimised on PGD examples,
block-wise K-FAC second-order damage), averaged over the calibration batches as
compute_saliency.py does; the weights are then pruned in one shot, globally over the pruned
layers, keeping the highest saliency (official ``--largest false``: the lowest-saliency fraction
is removed, ``_global_remove_weight``, kfac_MAD_pruner.py:173-233), and fine-tuned with the masks
fixed (main_mad_pretrain.py: 60 epochs, lr 0.1 at 50 %/75 % x0.1, wd 2e-4, a MART-style loss with
beta 0.5 -- the recipe is the grid's: benchmarks/grids/paper-mad-cifar10.yaml).

The adversarial examples are PGD with cross-entropy at the run loss's ``eps``, ``step_size`` and
``steps`` (the official attack_loader: PGD, eps 0.03, 10 steps), whatever the training loss.

Deviations (docs/baselines.md): the calibration uses ``calib_batches`` training batches
(default: one pass over the training set, as the official code); the pruned layers are prunekit's
(every conv/linear except stem and classifier; ``include_stem`` / ``include_classifier`` add
them: the official code prunes every conv globally and the classifier per output row);
biases are not pruned.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.pruning.base import Pruner
from prunekit.pruning.masking import apply_weight_masks, global_topk_masks, weight_masks

from baselines._common import select_layers
from baselines.mad_kfac import batch_saliency, optimise_masks

__all__ = ["MAD"]

log = logging.getLogger(__name__)


class MAD(Pruner):
    """Masking Adversarial Damage (``mad``).

    Args:
        sparsity: fraction of the pruned layers' weights removed (global ranking).
        calib_batches: training batches of the saliency pass; None = one epoch (official).
        mask_steps, mask_lr: Adam steps / lr of the per-batch mask optimisation (official 20,
            0.1).
        largest: prune the *highest* saliency instead (official flag ``--largest``, default
            False).
        include_stem / include_classifier: also prune the first conv / the last linear layer.

    Example::

        pruner = PRUNERS.build("mad", sparsity=0.9, calib_batches=64)
    """

    granularity = "weight"
    contract_tolerance = 0.005
    contract_hparams = {"calib_batches": 2, "mask_steps": 3}

    def __init__(self, sparsity: float, *, calib_batches: int | None = None,
                 mask_steps: int = 20, mask_lr: float = 0.1, largest: bool = False,
                 include_stem: bool = False, include_classifier: bool = False) -> None:
        super().__init__(sparsity)
        self._check(calib_batches is None or int(calib_batches) >= 1,
                    f"calib_batches must be None (one epoch) or >= 1, got {calib_batches!r}")
        self._check(int(mask_steps) >= 0, f"mask_steps must be >= 0, got {mask_steps!r}")
        self._check(float(mask_lr) > 0, f"mask_lr must be > 0, got {mask_lr!r}")
        self.calib_batches = None if calib_batches is None else int(calib_batches)
        self.mask_steps, self.mask_lr = int(mask_steps), float(mask_lr)
        self.largest = bool(largest)
        self.include_stem, self.include_classifier = bool(include_stem), bool(include_classifier)
        self._saliency: dict[str, Tensor] = {}
        self._facts: dict[str, Any] = {}

    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        self.model = model
        self.layers = select_layers(model, include_stem=self.include_stem,
                                    include_classifier=self.include_classifier)

    def calibrate(self, model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                  loss: Any) -> None:
        """The saliency pass of compute_saliency.py over ``calib_batches`` batches."""
        n = self.calib_batches or int(getattr(batches, "batches_per_epoch", 0) or 0)
        if n <= 0:
            raise ValueError("mad: calib_batches=None needs a batch stream that knows its "
                             "epoch length; give calib_batches")
        pgd = PGD(eps=float(loss.eps), step_size=float(loss.step_size), steps=int(loss.steps))
        total: dict[str, Tensor] = {}
        acc_before = acc_after = 0.0
        for x, y in itertools.islice(batches, n):
            x_adv = pgd(model, x, y)
            logits, before, after = optimise_masks(model, self.layers, x_adv, y,
                                                   self.mask_steps, self.mask_lr)
            sal = batch_saliency(model, self.layers, x_adv, y, logits)
            for k, v in sal.items():
                total[k] = total[k] + v / n if k in total else v / n
            acc_before, acc_after = acc_before + before / n, acc_after + after / n
        self._saliency = {k: v.cpu() for k, v in total.items()}
        flat = torch.cat([v.flatten() for v in self._saliency.values()])
        self._facts = {"calib_batches": n, "adv_acc_before_masks": round(acc_before, 4),
                       "adv_acc_after_masks": round(acc_after, 4),
                       "saliency_zero_fraction": round(float((flat == 0).float().mean()), 4),
                       "saliency_negative_fraction": round(float((flat < 0).float().mean()), 4)}
        log.info("mad: saliency of %d weights from %d batches (%s)", flat.numel(), n,
                 self._facts)

    def masks(self) -> dict[str, Tensor]:
        if not self._saliency:
            raise RuntimeError("mad: no saliency yet: the calibration pass (calibrate) did not "
                               "run")
        # global_topk keeps the highest score: the highest saliency (official), or the lowest
        keep = {k: (-v if self.largest else v) for k, v in self._saliency.items()}
        kept = global_topk_masks(keep, self.sparsity)
        return {k: m.to(self.layers[k].weight.device) for k, m in kept.items()}

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        return []  # one shot after the calibration pass: no prune-stage training

    def finalize(self, model: nn.Module) -> nn.Module:
        masks = self.masks()
        mag = {k: self.layers[k].weight.detach().abs() for k in masks}
        mag_kept = global_topk_masks(mag, self.sparsity)
        both = sum(int((masks[k] & mag_kept[k].to(masks[k].device)).sum()) for k in masks)
        kept = sum(int(m.sum()) for m in masks.values())
        self._facts["kept_as_magnitude"] = round(both / max(kept, 1), 4)
        apply_weight_masks(model, masks)
        missing = set(masks) - set(weight_masks(model))
        if missing:
            raise ValueError(f"mad: masks missing on {sorted(missing)}")
        self.model = None
        return model

    def summary(self) -> dict[str, Any]:
        return dict(self._facts)

    def state_dict(self) -> dict[str, Any]:
        return {"saliency": {k: v.clone() for k, v in self._saliency.items()},
                "facts": dict(self._facts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        sal = dict(state.get("saliency", {}))
        if sal and set(sal) != set(self.layers):
            raise ValueError(f"mad state has layers {sorted(sal)}, the attached model "
                             f"{sorted(self.layers)}")
        self._saliency = {k: v.float() for k, v in sal.items()}
        self._facts = dict(state.get("facts", {}))
