"""Random unstructured pruning (``random-weight``): the control every weight-level method (HYDRA,
ADMM, MAD, HARP, FlyingBird, Twin-Rep) must beat at the same sparsity and training budget.

Exactly :class:`~baselines.magnitude.Magnitude` with i.i.d. U[0, 1] scores instead of ``|w|``:
per layer (``scope="layer"``, default: every pruned layer keeps the same fraction) or globally
(``scope="global"``); masks fixed at ``attach``, the prune stage and fine-tuning train the masked
network. The scores come from a generator of its own, seeded from the run's RNG stream unless
``seed`` is given (recorded as ``init_seed`` in ``summary()``).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from baselines._common import draw_seed
from baselines.magnitude import Magnitude

__all__ = ["RandomWeight"]


class RandomWeight(Magnitude):
    """Uniformly random weights removed at ``sparsity`` (``random-weight``).

    Args:
        sparsity: fraction of the pruned layers' weights removed.
        scope: ``"layer"`` (same sparsity per layer) or ``"global"``.
        seed: selection seed; None = drawn at ``attach`` from the run's RNG stream.
        include_stem / include_classifier: also prune the first conv / the last linear layer.

    Example::

        pruner = PRUNERS.build("random-weight", sparsity=0.9)
    """

    def __init__(self, sparsity: float, *, scope: str = "layer", seed: int | None = None,
                 include_stem: bool = False, include_classifier: bool = False) -> None:
        super().__init__(sparsity, scope=scope, include_stem=include_stem,
                         include_classifier=include_classifier)
        self._check(seed is None or (isinstance(seed, int) and not isinstance(seed, bool)),
                    f"seed must be an integer or null, got {seed!r}")
        self.seed = seed
        self.init_seed: int | None = None

    def scores(self, layers: dict[str, nn.Module]) -> dict[str, Tensor]:
        self.init_seed = draw_seed(self.seed, self.registry_name or "random-weight")
        gen = torch.Generator().manual_seed(self.init_seed)
        return {n: torch.rand(m.weight.shape, generator=gen).to(m.weight.device)
                for n, m in layers.items()}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "init_seed": self.init_seed}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "init_seed": self.init_seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.init_seed = state.get("init_seed", self.init_seed)
