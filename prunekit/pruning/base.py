"""The Pruner lifecycle every pruning method implements (DESIGN.md, docs/adding-a-pruner.md).

The training pipeline drives a pruner like this::

    pruner = PRUNERS.build("d2bc", sparsity=0.9, **hparams)   # validates hyperparameters
    pruner.attach(model, example_inputs)                      # gates / scores / ADMM state
    pruner.calibrate(model, batches, adv_loss)                # only if the method overrides it
    opt = SGD(pruner.param_groups(model), lr=...)             # what trains in the prune stage
    pruner.bind_optimizer(opt)
    pruner.begin_stage(epochs, len(loader))
    for step, (x, y) in enumerate(loader):
        loss = adv_loss(model, x, y)[0] + pruner.penalty()
        loss.backward(); opt.step(); pruner.on_step_end(step)
    pruner.on_epoch_end(epoch)
    model = pruner.finalize(model)   # channel: physically smaller model; weight: fixed masks
    # ... fine-tune ``model`` with an ordinary optimizer: pruned weights stay exactly zero

A method with ``needs_pretrain = False`` (sparse training from scratch) gets the freshly
initialised model instead of the pretrained one. Metadata (docs/pruning.md): :attr:`Pruner.sparsity_target` says what ``sparsity`` removes (the
bench runner writes it to the CSV), :meth:`Pruner.hparams` returns the constructor arguments as
given at construction (defaults filled in; never state that evolves during training), and
:meth:`Pruner.summary` returns method-specific facts about the run (D2BC's calibration and
channel recovery, ADMM's convergence), recorded in run.json and the CSV's ``method_summary``.

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

from prunekit.hparams import Hyperparameters

__all__ = ["Pruner", "Granularity", "SPARSITY_TARGETS", "sparsity_target_of"]

Granularity = Literal["channel", "weight", "none"]
#: what a pruner's ``sparsity`` can target (docs/results-schema.md, column ``sparsity_target``)
SPARSITY_TARGETS = ("macs", "weights", "channels", "params", "none")
_DEFAULT_TARGET = {"channel": "macs", "weight": "weights", "none": "none"}


class Pruner(Hyperparameters, abc.ABC):
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

    #: the quantity ``sparsity`` removes (one of :data:`SPARSITY_TARGETS`): "macs" (measured
    #: MACs reduction of the finalized model), "weights" (weight sparsity of the prunable
    #: layers), "channels" (fraction of the prunable layers' output channels removed), "params"
    #: (parameter reduction) or "none" (dense). ``None`` = derived from :attr:`granularity`
    #: (channel -> macs, weight -> weights, none -> none). Written to the CSV by the bench runner
    #: and checked by the contract tests.
    sparsity_target: ClassVar[str | None] = None

    #: False for a method that trains sparse from scratch (FlyingBird, Twin-Rep): the pipeline
    #: skips dense pretraining and attaches to the freshly initialised model, so the prune stage
    #: is the whole (sparse) training; the CSV's ``pretrain_hash`` is then empty.
    needs_pretrain: ClassVar[bool] = True

    #: True for a method whose hard prune should leave the function (nearly) unchanged (ADMM:
    #: the weights due for removal were driven to zero first). The pipeline measures the change
    #: of every method (:mod:`prunekit.pruning.hard_prune`) and, for these, warns when it is not.
    lossless_finalize: ClassVar[bool] = False

    # -- what the contract tests (tests/test_pruner_contract.py) check --------------------------
    #: allowed absolute error between the measured quantity and ``sparsity`` after finalize
    contract_tolerance: ClassVar[float] = 0.02
    #: hyperparameters the contract tests pass so the target is reached in a few steps
    contract_hparams: ClassVar[dict[str, Any]] = {}
    #: learning rate of the contract tests' SGD during the prune stage
    contract_lr: ClassVar[float] = 0.01

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        target = cls.__dict__.get("sparsity_target")
        if target is not None and target not in SPARSITY_TARGETS:
            raise TypeError(f"{cls.__name__}.sparsity_target must be one of "
                            f"{', '.join(SPARSITY_TARGETS)} or None, got {target!r}")

    def __init__(self, sparsity: float, **hparams: Any) -> None:
        self._reject_unknown(hparams)
        sparsity = self._number(sparsity, f"sparsity must be a number in [0, 1), got {sparsity!r}")
        self._check(0.0 <= sparsity < 1.0,
                    f"sparsity must be in [0, 1) (fraction removed), got {sparsity}")
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

    def calibrate(self, model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                  loss: Any) -> None:
        """A data pass before the prune stage (MAD's adversarial saliency, SNIP, GraSP,
        Taylor-at-init); default: none, and the pipeline does not call it.

        Called once after :meth:`attach` with ``batches``, an iterator over the training set
        (``(x, y)`` on the model's device, a seeded order; take as many as you need, e.g. with
        ``itertools.islice``), and the run's adversarial ``loss`` (an
        :class:`prunekit.losses.AdvLoss`: ``loss.attack(model, x, y)`` crafts adversarial
        examples, ``loss(model, x, y)`` is the training objective). The model is in eval mode and
        gradients are enabled; leave its weights and mode as found. Must be deterministic given
        the model and the batches: on a resumed run it runs again before the prune stage's
        checkpoint restores :meth:`state_dict`.
        """

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Receive the prune stage's optimizer once it is built (before a resumed checkpoint is
        restored into it); default: ignored. For methods whose mask updates touch the
        optimizer's state, e.g. FlyingBird zeroing the momentum of pruned weights in
        :meth:`on_step_end`."""

    def begin_stage(self, epochs: int, steps_per_epoch: int) -> None:
        """Receive the prune stage's length right before its first step (again on a resumed
        run, after :meth:`load_state_dict`): ``epochs`` and the optimizer steps per epoch, so
        :meth:`on_step_end` sees indices ``0 .. epochs * steps_per_epoch - 1``; default:
        ignored. For schedules over the whole stage, e.g. FlyingBird's cosine-decaying death
        rate (its ``T_max`` is the stage's step count)."""

    def penalty(self) -> Tensor:
        """Term added to the adversarial loss during the prune stage; default 0."""
        return torch.zeros(())

    def stage_scheduler(self, optimizer: torch.optim.Optimizer, stage: Any) -> Any | None:
        """The pruner's own per-epoch learning-rate schedule for the prune stage (an
        ``LRScheduler`` on ``optimizer``; e.g. ADMM's official periodic reset), or None (default)
        for the stage's configured schedule."""
        return None

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
        """The constructor's hyperparameters as given at construction, defaults filled in
        (``sparsity`` excluded; plain values only), for logs and provenance. Arguments a
        subclass forwards through ``**kwargs`` are resolved against the parent constructors."""
        return self.constructor_arguments(skip=("sparsity",))

    def summary(self) -> dict[str, Any]:
        """Method-specific facts about this run (JSON-serialisable), e.g. D2BC's calibration or
        ADMM's convergence diagnostic; filled in by ``finalize``. Default: ``{}``."""
        return {}

    @classmethod
    def target_kind(cls) -> str:
        """What ``sparsity`` targets (:attr:`sparsity_target`, resolved from the granularity
        when not declared); :func:`sparsity_target_of` also reads an instance's own value."""
        return sparsity_target_of(cls)

    @classmethod
    def calibrates(cls) -> bool:
        """Whether the method has a calibration pass (overrides :meth:`calibrate`)."""
        return cls.calibrate is not Pruner.calibrate

    @staticmethod
    def _params(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
        return [p for m in modules for p in m.parameters(recurse=False)]


def sparsity_target_of(pruner: Any) -> str:
    """What a pruner (class or instance; any object with ``granularity``) targets with
    ``sparsity``: its declared ``sparsity_target``, else the default of its granularity."""
    target = getattr(pruner, "sparsity_target", None)
    if target is not None:
        return str(target)
    return _DEFAULT_TARGET.get(getattr(pruner, "granularity", "none"), "none")

