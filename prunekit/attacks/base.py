"""The attack family: :class:`Attack` (one class per attack, registered in ``ATTACKS`` or through
the ``prunekit.attacks`` entry-point group), its declared :class:`AttackMeta`, and the
:class:`AttackOutcome` every attack returns.

The evaluator, its sanity checks, the CSV columns and the per-example files read only the
declared metadata; nothing downstream looks at an attack's name or class. Like torchattacks'
``Attack.__call__``, :meth:`Attack.__call__` manages what every attack needs (the model's device,
fp32, eval mode restored afterwards, no autocast) and counts gradient evaluations, so an attack
implements only :meth:`Attack.run`.
"""
from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Literal

import torch
from torch import Tensor, nn

from prunekit.attacks.precision import strict_fp32
from prunekit.devices import model_device
from prunekit.modes import eval_mode
from prunekit.registry import ATTACKS

__all__ = ["Attack", "AttackMeta", "AttackOutcome", "Box", "NORMS",
           "count_gradient_forwards", "registered_names"]

Box = Literal["white", "black", "mixed"]
#: the threat models prunekit knows
NORMS = ("Linf", "L2", "L1")
_NORM_TEXT = {"Linf": "L-inf", "L2": "L2", "L1": "L1"}


@dataclass(frozen=True)
class AttackMeta:
    """Declared metadata of one configured attack.

    Attributes:
        name: the name as given in the run (the key of ``EvalResult.robust_acc``).
        label: human label for tables, e.g. ``"AutoAttack (standard)"``, ``"APGD-CE + APGD-T"``.
        components: canonical names of the attacks it runs, in order (an ensemble's stages); a
            single attack lists itself.
        norms: threat models it supports (``Linf``, ``L2``, ``L1``).
        box: ``"white"`` (uses gradients), ``"black"`` (queries only) or ``"mixed"`` (an
            ensemble with both).
        targeted: it attacks target classes (for an ensemble: any stage does).
        standard: it is the standard protocol of its kind (AutoAttack standard).
        column: the results-schema accuracy column it can fill (``pgd_acc``, ``apgd_acc``,
            ``aa_acc``) or None; where several attacks of a run can, a ``standard`` one wins,
            then the first in run order.
        reference: a parameter-free reliable attack (the official AutoAttack family), the
            yardstick of the gradient-masking checks.
        seeded: its result depends only on its parameters, its seed and the inputs, never on
            the global RNG (pyautoattack reseeds itself), so equal attacks give equal flags.
    """

    name: str
    label: str
    components: tuple[str, ...]
    norms: tuple[str, ...] = ("Linf",)
    box: Box = "white"
    targeted: bool = False
    standard: bool = False
    column: str | None = None
    reference: bool = False
    seeded: bool = False

    @property
    def ensemble(self) -> bool:
        """More than one component."""
        return len(self.components) > 1

    def record(self) -> dict[str, Any]:
        """The documented per-example-file record (docs/results-schema.md): ``name``,
        ``label``, ``components``, ``norms``, ``box``, ``targeted``, ``standard``."""
        return {"name": self.name, "label": self.label, "components": list(self.components),
                "norms": list(self.norms), "box": self.box, "targeted": self.targeted,
                "standard": self.standard}


@dataclass
class AttackOutcome:
    """Result of one attack on one batch.

    ``broken_at`` (ensembles only) holds, per example, the index of the stage that broke it
    (-1: never broken; clean-misclassified points count as broken by stage 0), and
    ``stage_seconds`` / ``stage_grad_evals`` the cost of each stage: :meth:`prefix` derives the
    outcome of the first stages from them.
    """

    robust: Tensor                     #: bool[B] on the CPU (False for clean-misclassified)
    x_adv: Tensor                      #: adversarial examples (x where not broken)
    messages: list[str] = field(default_factory=list)   #: captured check messages
    grad_evals: int = 0                #: per-example forward passes with input gradients
    broken_at: Tensor | None = None    #: long[B] on the CPU (ensembles)
    stage_seconds: list[float] = field(default_factory=list)
    stage_grad_evals: list[int] = field(default_factory=list)

    def prefix(self, k: int, x: Tensor) -> "AttackOutcome":
        """The outcome of the first ``k`` stages of an ensemble (``x``: the clean batch)."""
        if self.broken_at is None or not 0 < k <= len(self.stage_seconds):
            raise ValueError(f"no result for the first {k} stages of this outcome")
        hit = (self.broken_at >= 0) & (self.broken_at < k)
        keep = hit.to(x.device).view(-1, *[1] * (x.dim() - 1))
        return AttackOutcome(robust=~hit, x_adv=torch.where(keep, self.x_adv, x),
                             grad_evals=sum(self.stage_grad_evals[:k]))


@contextlib.contextmanager
def count_gradient_forwards(model: nn.Module) -> Iterator[list[int]]:
    """Count the examples of every forward pass of ``model`` whose input requires a gradient
    (with grad enabled): one per input-gradient evaluation in PGD, APGD and the like. The
    yielded one-element list holds the running count. A forward pre-hook only: outputs and
    gradients are untouched."""
    count = [0]

    def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], Tensor) and args[0].requires_grad and \
                torch.is_grad_enabled():
            count[0] += int(args[0].shape[0]) if args[0].dim() else 1

    handle = model.register_forward_pre_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def registered_names(cls: type) -> list[str]:
    """The names (canonical first, then aliases) under which ``cls`` is in ``ATTACKS``."""
    canon = [n for n in ATTACKS.names() if ATTACKS.get(n) is cls]
    return canon + [n for n in ATTACKS.names(aliases=True)
                    if n not in canon and ATTACKS.get(n) is cls]


class Attack(abc.ABC):
    """One attack of the family. Subclasses declare their metadata as class attributes,
    implement :meth:`run`, and (for parameterised names) :meth:`parse`.

    Args:
        eps: radius; norm: one of the class's ``norms``; seed: for attacks that seed
            themselves (others draw from the global RNG, which the evaluator seeds per batch).
        name: the name as given (result key); default :meth:`canonical`.

    A new attack is one class::

        @ATTACKS.register("my-attack")      # or an entry point in "prunekit.attacks"
        class MyAttack(Attack):
            label = "My attack"
            def run(self, model, x, y) -> AttackOutcome: ...
    """

    label: ClassVar[str] = ""
    norms: ClassVar[tuple[str, ...]] = ("Linf",)
    box: ClassVar[Box] = "white"
    targeted: ClassVar[bool] = False
    standard: ClassVar[bool] = False
    column: ClassVar[str | None] = None
    reference: ClassVar[bool] = False
    seeded: ClassVar[bool] = False
    #: the name forms listed in errors (default: the registered names)
    forms: ClassVar[tuple[str, ...]] = ()

    def __init__(self, eps: float, norm: str = "Linf", seed: int = 0, *,
                 name: str | None = None) -> None:
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        self.eps = float(eps)
        self.norm = norm
        self.seed = int(seed)
        self.name = name or self.canonical()
        supported = self.supported_norms()
        if norm not in supported:
            raise ValueError(f"{self.name}: supports {'/'.join(_NORM_TEXT[n] for n in supported)}"
                             f" only; got norm {norm!r}")

    # -- identity and metadata -------------------------------------------------------------
    @classmethod
    def parse(cls, name: str) -> dict[str, Any] | None:
        """Constructor keyword arguments if ``name`` (stripped, lower case) names this attack,
        else None. Default: one of the registered names, no arguments. A parameterised attack
        overrides this (``pgd-50-10@2/255`` is read by the PGD attack itself) and raises
        :class:`~prunekit.attacks.parse.AttackNameError` for a malformed name of its own form."""
        return {} if name in registered_names(cls) else None

    @classmethod
    def name_forms(cls) -> tuple[str, ...]:
        """How this attack is named (for error messages and ``prunekit list``)."""
        return cls.forms or tuple(registered_names(cls)[:1])

    @classmethod
    def supported_norms(cls) -> tuple[str, ...]:
        return cls.norms

    def canonical(self) -> str:
        """A name that parses back to this attack's parameters (an ensemble's components)."""
        names = registered_names(type(self))
        return names[0] if names else type(self).__name__.lower()

    def params(self) -> dict[str, Any]:
        """Everything the result depends on besides the inputs (two attacks with equal
        ``params`` and class are the same attack)."""
        return {"eps": self.eps, "norm": self.norm, "seed": self.seed}

    def same_as(self, other: "Attack") -> bool:
        return type(self) is type(other) and self.params() == other.params()

    @property
    def stages(self) -> tuple["Attack", ...]:
        """What runs, in order: the attack itself (an ensemble: its stage attacks)."""
        return (self,)

    def describe(self) -> str:
        """The human label (default: the class's ``label``)."""
        return self.label or self.canonical()

    @property
    def meta(self) -> AttackMeta:
        return AttackMeta(name=self.name, label=self.describe(),
                          components=tuple(s.canonical() for s in self.stages),
                          norms=self.supported_norms(), box=self.box, targeted=self.targeted,
                          standard=self.standard, column=self.column, reference=self.reference,
                          seeded=self.seeded)

    def provides(self, other: "Attack") -> bool:
        """True if running this attack also yields ``other``'s exact result (an ensemble and a
        prefix of its stages); then ``other`` is not run again."""
        return False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # -- running ---------------------------------------------------------------------------
    @abc.abstractmethod
    def run(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome:
        """Attack ``(x, y)`` (already on the model's device, fp32; model in eval mode)."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome:
        """Run on the model's device in fp32 and eval mode (the caller's modes are restored),
        outside autocast; ``grad_evals`` counted by :func:`count_gradient_forwards`."""
        device = model_device(model)
        x = x.detach().to(device=device, dtype=torch.float32)
        y = y.detach().to(device=device, dtype=torch.long)
        with eval_mode(model), strict_fp32(), count_gradient_forwards(model) as count:
            out = self.run(model, x, y)
        if tuple(out.robust.shape) != (x.shape[0],) or tuple(out.x_adv.shape) != tuple(x.shape):
            raise ValueError(f"{self.name}: run() returned robust {list(out.robust.shape)} and "
                             f"x_adv {list(out.x_adv.shape)} for a batch {list(x.shape)}")
        out.robust = out.robust.detach().bool().cpu()
        out.x_adv = out.x_adv.detach()
        out.grad_evals = count[0]
        return out
