"""The Pruner lifecycle every pruning method implements (DESIGN.md, docs/adding-a-pruner.md).

The training pipeline drives a pruner like this::

    pruner = PRUNERS.build("d2bc", sparsity=0.9, **hparams)   # validates hyperparameters
    pruner.attach(model, example_inputs)                      # gates / scores / ADMM state
    opt = SGD(pruner.param_groups(model), lr=...)             # what trains in the prune stage
    for step, (x, y) in enumerate(loader):
        loss = adv_loss(model, x, y)[0] + pruner.penalty()
        loss.backward(); opt.step(); pruner.on_step_end(step)
    pruner.on_epoch_end(epoch)
    model = pruner.finalize(model)   # channel: physically smaller model; weight: fixed masks
    # ... fine-tune ``model`` with an ordinary optimizer: pruned weights stay exactly zero

``state_dict()`` / ``load_state_dict()`` hold everything the pruner owns (gates, scores, Z/U,
rho, step counters) as tensors and plain values, so a prune stage resumes after a crash. The
model's own ``state_dict()`` is saved separately by the pipeline; ``attach`` must therefore be
deterministic given the model and the pruner's constructor arguments, and ``load_state_dict``
must be called *after* ``attach``.
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar, Iterable, Literal, Mapping

import torch
from torch import Tensor, nn

__all__ = ["Pruner", "Granularity"]

Granularity = Literal["channel", "weight", "none"]


class Pruner(abc.ABC):
    """Base class of every pruning method.

    Subclasses set :attr:`granularity`, validate their hyperparameters in ``__init__`` (raising
    ``ValueError`` with a one-line message naming the parameter and the valid range) and
    implement :meth:`attach`, :meth:`masks` and :meth:`finalize`. Everything else has a sensible
    default. Register with ``@PRUNERS.register("name")`` or the ``prunekit.pruners`` entry point.
    """

    #: "channel" (finalize returns a physically smaller model), "weight" (fixed masks) or "none"
    granularity: ClassVar[Granularity] = "weight"
    #: set by the registry to the registered name
    registry_name: ClassVar[str] = ""

    # -- what the contract tests (tests/test_pruner_contract.py) check --------------------------
    #: the quantity ``sparsity`` targets: "macs" (measured MACs reduction of the finalized model),
    #: "weight" (measured weight sparsity of the prunable layers) or "none" (dense: both 0).
    #: ``None`` = derived from :attr:`granularity` (channel -> macs, weight -> weight, none -> none)
    contract_target: ClassVar[str | None] = None
    #: allowed absolute error between the measured quantity and ``sparsity`` after finalize
    contract_tolerance: ClassVar[float] = 0.02
    #: hyperparameters the contract tests pass so the target is reached in a few steps
    contract_hparams: ClassVar[dict[str, Any]] = {}
    #: learning rate of the contract tests' SGD during the prune stage
    contract_lr: ClassVar[float] = 0.01

    def __init__(self, sparsity: float, **hparams: Any) -> None:
        if hparams:
            raise TypeError(f"{type(self).__name__}: unknown hyperparameter(s) "
                            f"{', '.join(sorted(hparams))}")
        try:
            sparsity = float(sparsity)
        except (TypeError, ValueError):
            raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1) (fraction removed), got {sparsity}")
        self.sparsity = sparsity
        self.model: nn.Module | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    @abc.abstractmethod
    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Prepare ``model`` for the prune stage (add gates, scores, ADMM state, hooks)."""

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Optimizer parameter groups for the prune stage; default: every model parameter.

        A group may carry its own ``lr`` / ``weight_decay`` (e.g. D2BC gates without decay).
        Return an empty list when nothing is trained (the pipeline then skips the stage).
        """
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def penalty(self) -> Tensor:
        """Term added to the adversarial loss during the prune stage; default 0."""
        return torch.zeros(())

    def on_step_end(self, step: int) -> None:
        """Called after every optimizer step of the prune stage (global step index)."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called after every epoch of the prune stage (0-based)."""

    @abc.abstractmethod
    def masks(self) -> dict[str, Tensor]:
        """Current hard keep-masks (bool) by module name: ``[out_channels]`` for channel
        pruners, the weight's shape for weight pruners."""

    @abc.abstractmethod
    def finalize(self, model: nn.Module) -> nn.Module:
        """Bake the masks: remove hooks/gates/scores and return a self-contained model whose
        pruned weights stay zero under ordinary optimizer steps (momentum, weight decay)."""

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the prune stage (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; called after :meth:`attach`."""

    # -- reporting ------------------------------------------------------------------------------
    def hparams(self) -> dict[str, Any]:
        """Hyperparameters as plain values (for logs and provenance)."""
        return {k: v for k, v in vars(self).items()
                if not k.startswith("_") and isinstance(v, (int, float, str, bool, type(None)))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def target_kind(cls) -> str:
        """What ``sparsity`` targets: "macs", "weight" or "none" (see :attr:`contract_target`)."""
        if cls.contract_target is not None:
            return cls.contract_target
        return {"channel": "macs", "weight": "weight"}.get(cls.granularity, "none")

    @staticmethod
    def _check(cond: bool, message: str) -> None:
        """Raise ``ValueError(message)`` unless ``cond`` (one-line hyperparameter errors)."""
        if not cond:
            raise ValueError(message)

    @staticmethod
    def _params(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
        return [p for m in modules for p in m.parameters(recurse=False)]
