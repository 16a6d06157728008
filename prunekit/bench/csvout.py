"""``prunekit report --csv DIR``: the report's tables as CSV files, for a spreadsheet or a paper's
own plotting.

- ``<table>.csv``, one per rendered table (``accuracy-<group>.csv``, ``comparison-<group>.csv``
  or ``comparison-<group>-<reference>.csv`` with several references, ``equal-MACs-...``): the
  cells exactly as printed in the Markdown table (strings: intervals in brackets, ``–`` = not
  measured);
- ``comparisons.csv``: every paired comparison as numbers, one row per (group, reference,
  cell, metric) -- the difference, both intervals, both p-values raw and Holm-adjusted, the
  MDD, the verdict and what it rests on (``basis``: ``seeds`` or ``examples``), the cost and
  training-budget ratios and the notes (:data:`COMPARISON_COLUMNS`).

Every file is written atomically (prunekit.atomic); NaN is an empty cell.
"""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any, Iterable

from prunekit.atomic import atomic_write_text
from prunekit.bench.compare import Comparison

__all__ = ["write_csv_tables", "COMPARISON_COLUMNS", "comparison_record"]

#: columns of ``comparisons.csv`` (differences and intervals in points)
COMPARISON_COLUMNS = (
    "group", "reference", "loss", "method", "variant", "target_sparsity", "metric", "seeds",
    "examples", "diff", "boot_lo", "boot_hi", "seed_lo", "seed_hi", "seed_std", "test", "p",
    "p_holm", "tests", "p_seed", "p_seed_holm", "seed_tests", "mdd", "significant", "basis",
    "macs_ratio", "params_ratio", "passes_ratio", "cpu_ratio", "only_method", "only_reference",
    "note", "budget_note")


def _num(x: Any) -> Any:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else x


def comparison_record(group: str, c: Comparison) -> dict[str, Any]:
    """One row of ``comparisons.csv``."""
    d, st = c.diff, c.seed_t
    rec = {"group": group, "reference": c.reference, "loss": c.loss, "method": c.method,
           "variant": c.variant, "target_sparsity": c.sparsity, "metric": c.metric,
           "seeds": c.seeds, "examples": c.n,
           "diff": d.mean if d else None, "boot_lo": d.lo if d else None,
           "boot_hi": d.hi if d else None, "seed_lo": st.lo if st else None,
           "seed_hi": st.hi if st else None, "seed_std": st.std if st else None,
           "test": c.test, "p": c.p, "p_holm": c.p_holm, "tests": c.tests, "p_seed": c.p_seed,
           "p_seed_holm": c.p_seed_holm, "seed_tests": c.seed_tests, "mdd": c.mdd,
           "significant": int(c.significant) if c.paired else "", "basis": c.basis,
           "macs_ratio": c.macs_ratio, "params_ratio": c.params_ratio,
           "passes_ratio": c.passes_ratio, "cpu_ratio": c.cpu_ratio,
           "only_method": c.only_method, "only_reference": c.only_reference,
           "note": "; ".join(x for x in (c.note, c.disagreement) if x),
           "budget_note": c.budget_note}
    return {k: _num(v) for k, v in rec.items()}


def _csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(header))
    w.writerows(rows)
    return buf.getvalue()


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", key).strip("-") + ".csv"


def write_csv_tables(rep: Any, out: Path) -> list[Path]:
    """Write ``rep``'s tables (a prunekit.bench.report.Report) and ``comparisons.csv`` into the
    directory ``out``; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, table in rep.tables.items():
        path = out / _file_name(key)
        atomic_write_text(path, _csv_text([str(c) for c in table.columns],
                                          table.itertuples(index=False)))
        written.append(path)
    recs = [comparison_record(group, c) for group, comps in rep.comparisons.items()
            for c in comps]
    path = out / "comparisons.csv"
    atomic_write_text(path, _csv_text(COMPARISON_COLUMNS,
                                      ([r[k] for k in COMPARISON_COLUMNS] for r in recs)))
    return written + [path]
