"""Adversarial training losses, registered in ``prunekit.LOSSES``: ``pgd_at`` (Madry et al.),
``trades`` (Zhang et al.), ``mart`` (Wang et al.), the fast ones, ``free_at`` (Shafahi et
al.) and ``fgsm_rs`` (Wong et al.); ``smooth`` (Gaussian-noise training for randomized
smoothing, HYDRA's smooth.py) and the verified-training losses ``ibp`` / ``crown-ibp``.

Build with ``LOSSES.build(name, eps=..., step_size=None, steps=10, beta=6.0)``; call as
``loss(model, x, y) -> (loss_tensor, {"loss", "clean_acc", "adv_acc"})``.
"""
from __future__ import annotations

from prunekit.losses.base import AdvLoss
from prunekit.losses.fgsm_rs import FGSMRS
from prunekit.losses.free_at import FreeAT
from prunekit.losses.ibp import CROWNIBPLoss, IBPLoss
from prunekit.losses.mart import MART
from prunekit.losses.pgd_at import PGDAT
from prunekit.losses.smooth import GaussianSmooth
from prunekit.losses.trades import TRADES

__all__ = ["AdvLoss", "PGDAT", "TRADES", "MART", "FreeAT", "FGSMRS", "GaussianSmooth", "IBPLoss",
           "CROWNIBPLoss"]
