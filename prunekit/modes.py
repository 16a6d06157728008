"""Module-mode context: the one place prunekit switches a model to eval mode and back.

Attacks, the training losses' inner maximisation, the evaluator, the hard-prune probe, the
dependency-graph tracing and the LRNAS scoring all run the model in eval mode (no batch-norm
statistic updates, no dropout) and must hand it back exactly as the caller had it -- *per
module*, since a caller may keep some modules in eval mode on purpose (a frozen BN, a partially
trained model). Gradient switches are not part of this: callers add ``torch.no_grad()`` /
``torch.enable_grad()`` themselves where they differ.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore the caller's mode (per module) afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
