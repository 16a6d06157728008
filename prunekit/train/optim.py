"""Optimizers and per-epoch learning-rate schedules from a :class:`~prunekit.config.StageConfig`."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR

__all__ = ["make_optimizer", "make_scheduler"]


def make_optimizer(params: Iterable[Any], stage: Any) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or Adam with the stage's lr and weight decay.

    ``params`` is a list of tensors or of parameter-group dicts (a pruner's ``param_groups``,
    whose own ``lr`` / ``weight_decay`` entries win over the stage's).
    """
    params = list(params)
    if stage.optimizer == "sgd":
        return torch.optim.SGD(params, lr=stage.lr, momentum=stage.momentum,
                               nesterov=stage.nesterov and stage.momentum > 0,
                               weight_decay=stage.weight_decay)
    if stage.optimizer == "adam":
        return torch.optim.Adam(params, lr=stage.lr, weight_decay=stage.weight_decay)
    raise ValueError(f"optimizer must be one of sgd, adam; got {stage.optimizer!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, stage: Any) -> LRScheduler:
    """Per-epoch schedule: ``cosine`` (to 0 over ``stage.epochs``), ``multistep`` (x ``lr_gamma``
    at each of ``stage.milestones``) or ``constant``."""
    if stage.schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max(int(stage.epochs), 1))
    if stage.schedule == "multistep":
        return MultiStepLR(optimizer, milestones=list(stage.milestones), gamma=stage.lr_gamma)
    if stage.schedule == "constant":
        return MultiStepLR(optimizer, milestones=[], gamma=1.0)
    raise ValueError(f"schedule must be one of cosine, multistep, constant; got {stage.schedule!r}")
