"""How much the hard prune (:meth:`Pruner.finalize`) changed the network's function.

ADMM's own diagnostic (``||W - Z|| / ||W||`` and the surviving norm of the pruned weights,
Zhang et al. 2018; Ye et al. 2019) looks at the prunable weights only. Removing a filter also
removes what its BatchNorm's shift ``beta - gamma * mu / sigma`` contributed through the ReLU to
the next layer, which no weight norm sees, so a filter-ADMM run can be "converged" by its weights
and still change its predictions at the hard prune. The pipeline therefore measures, for every
method, the function itself before and after ``finalize`` on a fixed probe batch (the first
training images, eval mode, fp32):

- ``finalize_logit_change``: ``||f_after(x) - f_before(x)||_F / ||f_before(x)||_F``;
- ``finalize_agreement``: the fraction of probe images whose top-1 class did not change.

Methods that train with their mask already applied (HYDRA, L1, random channels) record 0 / 1.0
(in a real run: the masked == compacted check); D2BC records what removing its sub-threshold
gates changed (fine-tuning follows). Every method (issue 19; before, only those claiming a
near-lossless hard prune, :attr:`Pruner.lossless_finalize`, ADMM) gets a ``warnings`` entry in
its summary when the agreement is below :data:`AGREEMENT_WARN` (more than 5 % of the probe's
predictions changed: the finalized network is not the one the search trained, e.g. D2BC's
calibration made the cut), and the report flags the row (``†``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from prunekit.attacks.precision import strict_fp32
from prunekit.modes import eval_mode

__all__ = ["AGREEMENT_WARN", "PROBE_SIZE", "probe_inputs", "probe_logits", "finalize_change"]

#: images in the probe batch (the first ones of the training set, in dataset order)
PROBE_SIZE = 256
#: below this top-1 agreement the row is flagged (any method)
AGREEMENT_WARN = 0.95


def probe_inputs(dataset: Dataset, device: torch.device, n: int = PROBE_SIZE) -> Tensor:
    """The first ``n`` images of ``dataset`` (deterministic: no shuffling, no augmentation
    randomness beyond the dataset's own) as one batch on ``device``."""
    k = min(n, len(dataset))  # type: ignore[arg-type]
    return torch.stack([dataset[i][0] for i in range(k)]).to(device)


@torch.no_grad()
def probe_logits(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)`` in eval mode and strict fp32 (the caller's module modes are restored)."""
    with eval_mode(model), strict_fp32():
        return model(x).float().detach()


def finalize_change(before: Tensor, after: Tensor,
                    lossless_claimed: bool = False) -> dict[str, Any]:
    """The two probe statistics (module docstring) and a ``warnings`` list when the agreement is
    below :data:`AGREEMENT_WARN` (any method; ``lossless_claimed`` only words the warning)."""
    if before.shape != after.shape:
        raise ValueError(f"probe logits changed shape at finalize: {tuple(before.shape)} -> "
                         f"{tuple(after.shape)}")
    change = float((after - before).norm() / before.norm().clamp_min(1e-12))
    agree = float((after.argmax(1) == before.argmax(1)).float().mean())
    out: dict[str, Any] = {"finalize_logit_change": round(change, 6),
                           "finalize_agreement": round(agree, 6)}
    if agree < AGREEMENT_WARN:
        what = "hard prune" if lossless_claimed else "finalize"
        out["warnings"] = [f"{what} changed {100 * (1 - agree):.1f} % of the predictions "
                           f"on a training batch (logits by {100 * change:.0f} %)"]
    return out
