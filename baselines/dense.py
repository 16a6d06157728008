"""Dense: the no-pruning method, so dense TRADES / MART rows come through the same pipeline.

``sparsity`` must be 0: a dense run that silently ignores a requested sparsity would put a
mislabelled row in the results table, so any other value is an error.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from prunekit.pruning.base import Pruner

__all__ = ["Dense"]


class Dense(Pruner):
    """No pruning (``dense``): the prune stage trains every model parameter, ``finalize``
    returns the model unchanged.

    Example::

        pruner = PRUNERS.build("dense", sparsity=0.0)
    """

    granularity = "none"

    def __init__(self, sparsity: float = 0.0, **hparams: Any) -> None:
        super().__init__(sparsity, **hparams)
        if self.sparsity != 0.0:
            raise ValueError(f"dense does not prune: sparsity must be 0, got {self.sparsity}")

    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        self.model = model

    def masks(self) -> dict[str, Tensor]:
        return {}

    def finalize(self, model: nn.Module) -> nn.Module:
        self.model = None
        return model
