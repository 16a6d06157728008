"""``EvalResult``: what :class:`prunekit.eval.RobustnessEvaluator` returns, and its CSV row."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from prunekit.attacks.base import AttackMeta
from prunekit.attacks.parse import parse_attack
from prunekit.eval.examples import Examples, ExamplesError, read_examples, write_examples

__all__ = ["EvalResult", "SCHEMA_COLUMNS"]

#: the results-schema accuracy columns an attack can fill (``AttackMeta.column``)
SCHEMA_COLUMNS = ("pgd_acc", "apgd_acc", "aa_acc")


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
        grad_evals: per-example forward passes with input gradients, per attack (counted alike
            for every attack; a reused attack: its stages' share of the provider's).
        warnings: human-readable messages from the sanity checks (and AutoAttack's own).
        checks: short codes of the failed checks (``[]`` when all passed).
        seed, batch_size: as configured; resumed_batches: batch results taken from the state.
        index: int64 indices of the evaluated examples in the dataset (through ``Subset``\\s),
            in evaluation order; None where unknown (a shuffling DataLoader).
        meta: ``{attack name: AttackMeta}``, the attacks' declared metadata.
        reused: ``{attack: provider}`` for attacks whose result was read from another attack's
            run (an ensemble's first stage) instead of being run again.
        cert_flags: ``{certificate metric: bool [n]}`` (certified and correct; ``ibp``,
            ``smooth0.25@0.5``); never part of ``worst``.
        radii: ``{certifier: float64 [n]}`` per-example certified radii (smoothing; ``-inf``
            where abstained or wrong).
        cert_meta: ``{certifier: its JSON record}``.
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
    index: Tensor | None = None
    meta: dict[str, AttackMeta] = field(default_factory=dict)
    reused: dict[str, str] = field(default_factory=dict)
    cert_flags: dict[str, Tensor] = field(default_factory=dict)
    radii: dict[str, Tensor] = field(default_factory=dict)
    cert_meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def certified(self) -> dict[str, float]:
        """``{certificate metric: certified accuracy}`` (the ``certified_acc`` column)."""
        return {m: self._acc(f.bool()) for m, f in self.cert_flags.items()}

    @property
    def eval_s(self) -> float:
        """Total evaluation seconds (clean pass + every attack that ran; a reused attack's time
        is part of its provider's)."""
        return float(sum(v for k, v in self.seconds.items() if k not in self.reused))

    @property
    def checks_str(self) -> str:
        """``"ok"`` or the failed check codes joined by ``;`` (the CSV ``checks`` column)."""
        return ";".join(dict.fromkeys(self.checks)) if self.checks else "ok"

    def column_attacks(self) -> dict[str, str | None]:
        """Which attack fills each results-schema accuracy column, from the attacks' declared
        ``AttackMeta.column``: a ``standard`` attack first, then the first in run order
        (``pgd_acc`` the first PGD, ``apgd_acc`` APGD-CE, ``aa_acc`` AutoAttack standard, else
        APGD-CE + APGD-T)."""
        out: dict[str, str | None] = {}
        for col in SCHEMA_COLUMNS:
            names = [a for a in self.attacks if self.meta[a].column == col]
            out[col] = next((a for a in names if self.meta[a].standard), None) or \
                next(iter(names), None)
        return out

    def to_row(self) -> dict[str, Any]:
        """The evaluation columns of the results CSV (docs/evaluation.md); NaN for an attack
        that was not run. ``robust_acc`` is the JSON object of every attack's accuracy."""
        row: dict[str, Any] = {"clean_acc": self.clean_acc}
        for col, name in self.column_attacks().items():
            row[col] = self.robust_acc[name] if name is not None else math.nan
        row.update(worst_acc=self.worst_acc, eval_s=round(self.eval_s, 3),
                   n_eval=self.n_examples, eps=self.eps, checks=self.checks_str,
                   robust_acc=json.dumps({a: self.robust_acc[a] for a in self.attacks}),
                   certified_acc=json.dumps(self.certified))
        return row

    # -- per-example file ------------------------------------------------------------------
    def write_examples(self, path: str | os.PathLike, *, run_id: str, dataset: str,
                       split: str = "test", extra: dict[str, Any] | None = None) -> Path:
        """Write the per-example file (docs/results-schema.md) atomically; returns its path.
        :class:`~prunekit.eval.examples.ExamplesError` if the example indices are unknown."""
        if self.index is None:
            raise ExamplesError("per-example indices unknown (the data was a DataLoader that "
                                "does not iterate its dataset in order); evaluate a Dataset")
        names = ["clean", *self.attacks, "worst"]
        flags = torch.stack([self.flags[n].bool().cpu() for n in names]).numpy()
        meta = {"run_id": run_id, "dataset": dataset, "split": split, "eps": self.eps,
                "norm": self.norm, "seed": self.seed,
                "attacks": [self.meta[a].record() for a in self.attacks],
                "reused": dict(self.reused), "certify": list(self.cert_meta.values()),
                **(extra or {})}
        cert_names = list(self.cert_flags)
        cert = torch.stack([self.cert_flags[n].bool().cpu() for n in cert_names]).numpy() \
            if cert_names else None
        rad_names = list(self.radii)
        rad = torch.stack([self.radii[n].double().cpu() for n in rad_names]).numpy() \
            if rad_names else None
        return write_examples(path, index=self.index.cpu().numpy(), names=names, flags=flags,
                              meta=meta, cert_names=cert_names, cert_flags=cert,
                              radius_names=rad_names, radii=rad)

    @staticmethod
    def read_examples(path: str | os.PathLike) -> Examples:
        """Read a per-example file (:func:`prunekit.eval.examples.read_examples`)."""
        return read_examples(path)

    def table(self) -> str:
        """A plain-text table: accuracy (%) and seconds per row."""
        lines = [f"{'attack':<22s} {'acc %':>7s} {'seconds':>9s}",
                 f"{'clean':<22s} {100 * self.clean_acc:7.2f} "
                 f"{self.seconds.get('clean', 0.0):9.1f}"]
        for name in self.attacks:
            note = f"  (in {self.reused[name]})" if name in self.reused else ""
            lines.append(f"{name:<22s} {100 * self.robust_acc[name]:7.2f} "
                         f"{self.seconds.get(name, 0.0):9.1f}{note}")
        lines.append(f"{'worst (all attacks)':<22s} {100 * self.worst_acc:7.2f} "
                     f"{self.eval_s:9.1f}")
        for name, acc in self.certified.items():
            lines.append(f"{'certified ' + name:<22s} {100 * acc:7.2f}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly dict (no per-example flags)."""
        return {"eps": self.eps, "norm": self.norm, "n_examples": self.n_examples,
                "clean_acc": self.clean_acc, "robust_acc": dict(self.robust_acc),
                "worst_acc": self.worst_acc, "seconds": dict(self.seconds),
                "grad_evals": dict(self.grad_evals), "warnings": list(self.warnings),
                "checks": self.checks_str, "seed": self.seed, "reused": dict(self.reused),
                "attacks": [self.meta[a].record() for a in self.attacks],
                "certified": self.certified, "certify": list(self.cert_meta.values())}

    @staticmethod
    def _acc(flags: Tensor) -> float:
        return int(flags.sum()) / flags.numel() if flags.numel() else math.nan

    @classmethod
    def from_flags(cls, *, eps: float, norm: str, attacks: list[str],
                   flags: dict[str, Tensor], **kw: Any) -> "EvalResult":
        """Build a result from per-example flags (``"clean"`` and one per attack); attacks
        missing from ``meta`` get the metadata their name parses to."""
        meta = dict(kw.pop("meta", None) or {})
        for name in attacks:
            if name not in meta:
                meta[name] = parse_attack(name).build(eps, norm).meta
        clean = flags["clean"].bool()
        worst = clean.clone()
        for name in attacks:
            worst &= flags[name].bool()
        flags = {**flags, "worst": worst}
        return cls(eps=eps, norm=norm, n_examples=int(clean.numel()), attacks=list(attacks),
                   clean_acc=cls._acc(clean),
                   robust_acc={a: cls._acc(flags[a]) for a in attacks},
                   worst_acc=cls._acc(worst), flags=flags, meta=meta, **kw)

