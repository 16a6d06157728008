"""``EvalResult``: what :class:`prunekit.eval.RobustnessEvaluator` returns, and its CSV row."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["EvalResult"]


@dataclass
class EvalResult:
    """Accuracies are fractions in [0, 1] over the ``n_examples`` evaluated points.

    Attributes:
        eps, norm: the threat model.
        n_examples: number of examples evaluated (the first N of the dataset, in order).
        attacks: attack names as given, in run order.
        clean_acc: clean accuracy (model in eval mode).
        robust_acc: ``{attack name: accuracy}``; each attack is run independently on every
            clean-correct point.
        worst_acc: per-example worst case: robust only if correct under every attack run.
        flags: per-example bool tensors: ``"clean"``, each attack name, and ``"worst"``.
        seconds: wall seconds per attack name and ``"clean"`` (summed over resumed sessions).
        grad_evals: per-example input gradients per PGD attack (0 for pyautoattack attacks).
        warnings: human-readable messages from the sanity checks (and AutoAttack's own).
        checks: short codes of the failed checks (``[]`` when all passed).
        seed, batch_size: as configured; resumed_batches: batch results taken from the state.
    """

    eps: float
    norm: str
    n_examples: int
    attacks: list[str]
    clean_acc: float
    robust_acc: dict[str, float]
    worst_acc: float
    flags: dict[str, Tensor]
    seconds: dict[str, float]
    grad_evals: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    seed: int = 0
    batch_size: int = 0
    resumed_batches: int = 0

    @property
    def eval_s(self) -> float:
        """Total evaluation seconds (clean pass + every attack)."""
        return float(sum(self.seconds.values()))

    @property
    def checks_str(self) -> str:
        """``"ok"`` or the failed check codes joined by ``;`` (the CSV ``checks`` column)."""
        return ";".join(dict.fromkeys(self.checks)) if self.checks else "ok"

    def first(self, predicate) -> str | None:  # type: ignore[no-untyped-def]
        """The first attack name (in run order) whose parsed spec satisfies ``predicate``."""
        from prunekit.attacks.parse import parse_attack

        for name in self.attacks:
            if predicate(parse_attack(name)):
                return name
        return None

    def column_attacks(self) -> dict[str, str | None]:
        """Which attack fills each CSV accuracy column: ``pgd_acc`` the first ``pgd-*``,
        ``apgd_acc`` ``apgd-ce``, ``aa_acc`` ``autoattack`` (else ``autoattack-fast``)."""
        aa = self.first(lambda s: s.kind == "autoattack" and s.version == "standard") \
            or self.first(lambda s: s.ensemble)
        return {
            "pgd_acc": self.first(lambda s: s.kind == "pgd"),
            "apgd_acc": self.first(lambda s: s.aa_attacks == ("apgd-ce",)),
            "aa_acc": aa,
        }

    def to_row(self) -> dict[str, Any]:
        """The evaluation columns of the results CSV (docs/evaluation.md); NaN for an attack
        that was not run."""
        row: dict[str, Any] = {"clean_acc": self.clean_acc}
        for col, name in self.column_attacks().items():
            row[col] = self.robust_acc[name] if name is not None else math.nan
        row.update(worst_acc=self.worst_acc, eval_s=round(self.eval_s, 3),
                   n_eval=self.n_examples, eps=self.eps, checks=self.checks_str)
        return row

    def table(self) -> str:
        """A plain-text table: accuracy (%) and seconds per row."""
        lines = [f"{'attack':<22s} {'acc %':>7s} {'seconds':>9s}",
                 f"{'clean':<22s} {100 * self.clean_acc:7.2f} "
                 f"{self.seconds.get('clean', 0.0):9.1f}"]
        for name in self.attacks:
            lines.append(f"{name:<22s} {100 * self.robust_acc[name]:7.2f} "
                         f"{self.seconds.get(name, 0.0):9.1f}")
        lines.append(f"{'worst (all attacks)':<22s} {100 * self.worst_acc:7.2f} "
                     f"{self.eval_s:9.1f}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly dict (no per-example flags)."""
        return {"eps": self.eps, "norm": self.norm, "n_examples": self.n_examples,
                "clean_acc": self.clean_acc, "robust_acc": dict(self.robust_acc),
                "worst_acc": self.worst_acc, "seconds": dict(self.seconds),
                "grad_evals": dict(self.grad_evals), "warnings": list(self.warnings),
                "checks": self.checks_str, "seed": self.seed}

    @staticmethod
    def _acc(flags: Tensor) -> float:
        return int(flags.sum()) / flags.numel() if flags.numel() else math.nan

    @classmethod
    def from_flags(cls, *, eps: float, norm: str, attacks: list[str],
                   flags: dict[str, Tensor], **kw: Any) -> "EvalResult":
        """Build a result from per-example flags (``"clean"`` and one per attack)."""
        clean = flags["clean"].bool()
        worst = clean.clone()
        for name in attacks:
            worst &= flags[name].bool()
        flags = {**flags, "worst": worst}
        return cls(eps=eps, norm=norm, n_examples=int(clean.numel()), attacks=list(attacks),
                   clean_acc=cls._acc(clean),
                   robust_acc={a: cls._acc(flags[a]) for a in attacks},
                   worst_acc=cls._acc(worst), flags=flags, **kw)

