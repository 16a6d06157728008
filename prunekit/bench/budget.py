"""Training cost of compared rows (issue 19): do the methods of a comparison train for the same
budget, as well as cost the same at inference?

Read from the results CSV (schema v3, docs/results-schema.md): ``train_epochs`` (JSON
``{stage: epochs}``; pruners ``pretrain`` / ``calibrate`` / ``prune`` / ``finetune``, searchers
``pretrain`` (0) / ``search`` / ``train``), ``train_passes`` (example-weighted forward passes of
every training stage) and ``train_cpu_s`` (process CPU seconds). The budget convention of the
comparison grids is "the same number of epochs after pretraining for every method" (a method
without a search stage fine-tunes longer), so the report compares

- **epochs after pretraining**: the sum of every stage that trains the evaluated network from
  its starting point with the run's loss -- every stage but ``pretrain`` (the pruners' dense
  pretraining) and ``search`` (a searcher's supernet, whose weights are discarded: it is the
  searcher's counterpart of the pretraining, not training of the final network) -- and the
  pretraining or search epochs beside it;
- **forward passes** and **CPU seconds**: the cell's mean over its runs relative to the
  reference cell's (``passes ×ref``); within 5 % (:data:`SAME_BUDGET`) is "the same".

Rows written before schema v3 have none of these columns: their budget is *unknown*, never
"equal".
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

__all__ = ["Budget", "row_budget", "cell_budget", "CellBudget", "SAME_BUDGET", "budget_note",
           "budget_sentence"]

#: relative distance of two forward-pass (or CPU-second) totals still called "the same"
SAME_BUDGET = 0.05
#: stages before the evaluated network's own training, and how a note names them
_BEFORE = {"pretrain": "pretraining", "search": "search"}


def _num(v: Any) -> float:
    """A CSV cell as a float; empty or unreadable is NaN (unknown)."""
    x = pd.to_numeric(pd.Series([v], dtype=object), errors="coerce").iloc[0]
    return float(x) if pd.notna(x) else math.nan


@dataclass(frozen=True)
class Budget:
    """One run's training cost; ``stages`` None and NaN totals = unknown."""

    stages: Mapping[str, int] | None
    passes: float = math.nan
    cpu_s: float = math.nan

    @property
    def pretrain(self) -> int | None:
        """Epochs before the evaluated network's own training (dense pretraining, or a
        searcher's supernet search; 0 for a skipped stage), None if unknown."""
        if self.stages is None:
            return None
        return int(sum(v for k, v in self.stages.items() if k in _BEFORE))

    @property
    def before_kind(self) -> str:
        """``pretraining`` or ``search`` (a searcher's row): what :attr:`pretrain` counts."""
        return _BEFORE["search"] if self.stages and "search" in self.stages else \
            _BEFORE["pretrain"]

    @property
    def after(self) -> int | None:
        """Epochs of every stage after pretraining (or the search), None if unknown."""
        if self.stages is None:
            return None
        return int(sum(v for k, v in self.stages.items() if k not in _BEFORE))


def row_budget(row: Mapping[str, Any]) -> Budget:
    """The budget of one CSV row (a dict or pandas row); unknown fields stay unknown."""
    text = row.get("train_epochs")
    stages = None
    if isinstance(text, str) and text.strip():
        try:
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                stages = {str(k): int(v) for k, v in parsed.items()}
        except (json.JSONDecodeError, TypeError, ValueError):
            stages = None
    return Budget(stages, _num(row.get("train_passes")), _num(row.get("train_cpu_s")))


@dataclass(frozen=True)
class CellBudget:
    """A cell's runs: the distinct (pretrain, after) epochs of its known runs, mean passes and
    CPU seconds over the runs that know them, and how many runs are unknown."""

    epochs: tuple[tuple[int, int], ...]
    passes: float
    cpu_s: float
    runs: int
    unknown: int
    #: what the first number of ``epochs`` counts: "pretraining" or "search"
    before_kind: str = _BEFORE["pretrain"]

    @property
    def known(self) -> bool:
        return self.unknown < self.runs

    def epochs_text(self) -> str:
        """``8 (after 5 pretraining)``; several values joined by ``/``."""
        if not self.epochs:
            return "unknown"
        return "/".join(f"{a}" for _, a in self.epochs) + " (after " + "/".join(
            str(p) for p in dict.fromkeys(p for p, _ in self.epochs)) + f" {self.before_kind})"


def cell_budget(rows: pd.DataFrame) -> CellBudget:
    """The :class:`CellBudget` of the runs in ``rows``."""
    budgets = [row_budget(r) for r in rows.to_dict("records")]
    known = [b for b in budgets if b.stages is not None]
    epochs = tuple(sorted({(int(b.pretrain or 0), int(b.after or 0)) for b in known}))

    def mean(xs: list[float]) -> float:
        xs = [x for x in xs if not math.isnan(x)]
        return float(sum(xs) / len(xs)) if xs else math.nan

    kinds = {b.before_kind for b in known}
    return CellBudget(epochs, mean([b.passes for b in budgets]), mean([b.cpu_s for b in budgets]),
                      len(budgets), len(budgets) - len(known),
                      kinds.pop() if len(kinds) == 1 else "pretraining/search")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else math.nan


def budget_note(cell: CellBudget, ref: CellBudget, ref_name: str) -> str:
    """Per-row note when the training budget differs from the reference's (epochs after
    pretraining, pretraining epochs, or forward passes beyond 5 %); empty if it matches or
    either side is unknown."""
    if not cell.known or not ref.known:
        return ""
    out = []
    if {a for _, a in cell.epochs} != {a for _, a in ref.epochs}:
        out.append(f"{'/'.join(str(a) for _, a in cell.epochs)} epochs after pretraining vs "
                   f"{'/'.join(str(a) for _, a in ref.epochs)} for {ref_name}")
    if {p for p, _ in cell.epochs} != {p for p, _ in ref.epochs} or \
            cell.before_kind != ref.before_kind:
        out.append(f"{'/'.join(str(p) for p, _ in cell.epochs)} {cell.before_kind} epochs vs "
                   f"{'/'.join(str(p) for p, _ in ref.epochs)} {ref.before_kind} for {ref_name}")
    r = _ratio(cell.passes, ref.passes)
    if not math.isnan(r) and abs(r - 1) > SAME_BUDGET:
        out.append(f"{r:.2f}× {ref_name}'s training forward passes")
    return "training budget differs: " + ", ".join(out) if out else ""


def _spread(xs: Sequence[float]) -> float:
    xs = [x for x in xs if not math.isnan(x) and x > 0]
    return max(xs) / min(xs) - 1 if len(xs) > 1 else math.nan


def budget_sentence(cells: Mapping[str, CellBudget], flagged: Mapping[str, str]) -> str:
    """One sentence on the training budgets of a comparison table: ``cells`` maps each paired
    cell's printed name (the reference cells included) to its budget; ``flagged`` the cells
    whose budget differs from the reference cell they were paired with -> the
    :func:`budget_note` saying how."""
    unknown = [k for k, c in cells.items() if c.unknown]
    known = {k: c for k, c in cells.items() if c.known}
    if not known:
        return ("Training budget: unknown (no train_epochs / train_passes / train_cpu_s in these "
                "rows: results written before results schema v3), so equal training cost is not "
                "shown.")
    afters = {a for c in known.values() for _, a in c.epochs}
    pres = {p for c in known.values() for p, _ in c.epochs}
    kinds = {c.before_kind for c in known.values()}
    if len(afters) == 1 and len(pres) == 1 and kinds == {_BEFORE["pretrain"]}:
        text = (f"Training budget: equal epochs after pretraining ({afters.pop()}) for every "
                f"method, pretraining {pres.pop()} epochs")
    elif len(afters) == 1:
        text = (f"Training budget: equal epochs after pretraining or search ({afters.pop()}) for "
                f"every method; before them: " + "; ".join(
                    f"{k} {'/'.join(str(p) for p in dict.fromkeys(p for p, _ in c.epochs))} "
                    f"{c.before_kind}" for k, c in known.items()))
    else:
        text = ("Training budget: epochs after pretraining differ -- "
                + "; ".join(f"{k} {c.epochs_text()}" for k, c in known.items()))
    for what, attr in (("training forward passes", "passes"), ("training CPU seconds", "cpu_s")):
        s = _spread([getattr(c, attr) for c in known.values()])
        text += (f"; {what} not recorded" if math.isnan(s) else
                 f"; {what} within {100 * s:.1f} % (largest / smallest cell mean)")
    if flagged:
        text += "; differs from its reference: " + "; ".join(
            f"{k} ({v.removeprefix('training budget differs: ')})" for k, v in flagged.items())
    if unknown:
        text += (f"; unknown for {', '.join(unknown)} (rows without the schema-v3 training "
                 f"columns)")
    return text + (". Forward passes are the like-for-like measure; CPU seconds depend on the "
                   "machine and its load.")
