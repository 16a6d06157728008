"""From ``results.csv`` to report cells: typed rows, per-example files, costs, 95 % intervals.

A *cell* is one (dataset, model, eps, loss, method, variant, target sparsity): its runs differ
only by seed or fold. Per metric (``clean``, every attack that ran, ``worst``) a cell has an
:class:`~prunekit.bench.stats.Interval`: for one run the Wilson interval over its ``n_eval``
examples, for several the mean ± sample std and the t-interval over runs.

Costs, relative to the dense model: ``rel_macs = 1 - macs_reduction`` and ``rel_params =
1 - params_reduction`` (non-zero parameters for masked models). Results written before schema v2
have no ``params_reduction``: it is derived as ``1 - params / params(dense)`` for channel
pruners and dense (the dense run with the same ``pretrain_hash``), and left unknown for masked
models, whose stored parameter count includes the zeros. ``sparsity_target`` missing there too
is derived from the granularity (channel -> macs, weight -> weights, none -> none).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from prunekit.bench.examples import load_per_example
from prunekit.bench.labels import CLEAN, WORST, method_label, method_sort_key, row_accuracies
from prunekit.bench.stats import Interval, t_interval, wilson
from prunekit.bench.store import COLUMNS, ResultsStore

__all__ = ["load_results", "prepare", "summarize", "metric_names", "dense_cost", "CELL_KEYS",
           "GROUP_KEYS"]

#: one table per group; one row per cell
GROUP_KEYS = ["dataset", "model", "eps"]
CELL_KEYS = ["loss", "method", "variant", "target_sparsity"]
_NUMERIC = ["target_sparsity", "weight_sparsity", "macs_reduction", "params", "macs", "eps",
            "n_eval", "clean_acc", "pgd_acc", "apgd_acc", "aa_acc", "worst_acc", "train_s",
            "eval_s", "params_reduction", "seed", "fold"]
_TARGET_OF = {"channel": "macs", "weight": "weights", "none": "none"}


def load_results(csv_path: str | Path) -> pd.DataFrame:
    """Read a results CSV (under its lock, via :class:`ResultsStore`) into a typed frame."""
    path = Path(csv_path)
    if not path.exists():
        raise FileNotFoundError(f"results file not found: {path}")
    df = pd.DataFrame(ResultsStore(path).rows(), columns=list(COLUMNS))
    for c in _NUMERIC:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("variant", "examples", "robust_acc", "sparsity_target", "granularity"):
        df[c] = df[c].fillna("")
    return df


def prepare(df: pd.DataFrame, csv_dir: Path) -> pd.DataFrame:
    """The ``ok`` rows of ``df`` with ``_acc`` (metric -> accuracy), ``_pe`` (the per-example
    file or None), ``rel_macs``, ``rel_params``, ``sp_target`` and ``_order`` (sort key)."""
    ok = df[df["status"] == "ok"].copy().reset_index(drop=True)
    ok["_acc"] = [row_accuracies(r) for r in ok.to_dict("records")]
    ok["_pe"] = [load_per_example(csv_dir, rel) for rel in ok["examples"]]
    ok["rel_macs"] = 1.0 - ok["macs_reduction"]
    pr = ok["params_reduction"].copy()
    dense = ok[ok["granularity"] == "none"].groupby("pretrain_hash")["params"].mean()
    for i, r in ok[pr.isna()].iterrows():
        if r["granularity"] == "none":
            pr[i] = 0.0
        elif r["granularity"] == "channel" and r["pretrain_hash"] in dense.index:
            pr[i] = 1.0 - r["params"] / dense[r["pretrain_hash"]]
    ok["rel_params"] = 1.0 - pr
    ok["sp_target"] = [t or _TARGET_OF.get(g, "") for t, g in zip(ok["sparsity_target"],
                                                                  ok["granularity"])]
    ok["_order"] = [method_sort_key(m, g) for m, g in zip(ok["method"], ok["granularity"])]
    return ok


def metric_names(ok: pd.DataFrame) -> list[str]:
    """``clean``, every attack that ran (first-seen order), ``worst``."""
    names: dict[str, None] = {}
    for acc in ok["_acc"]:
        names.update(dict.fromkeys(acc))
    rest = [n for n in names if n not in (CLEAN, WORST)]
    return [n for n in (CLEAN, *rest, WORST) if n in names]


def _interval(accs: list[float], n_eval: list[float]) -> Interval | None:
    pts = [(a, n) for a, n in zip(accs, n_eval) if not math.isnan(a)]
    if not pts:
        return None
    if len(pts) == 1:
        a, n = pts[0]
        if math.isnan(n) or n <= 0:
            return Interval(a, math.nan, math.nan)
        return wilson(round(a * n), int(n))
    return t_interval([a for a, _ in pts])


def summarize(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of ``ok`` (already one group), in display order: keys, ``label``,
    ``runs``, mean ``macs`` / ``params`` / ``rel_macs`` / ``rel_params`` / reductions,
    ``sp_target``, ``granularity``, and ``acc:<metric>`` :class:`Interval` columns."""
    metrics = metric_names(ok)
    losses = list(dict.fromkeys(ok["loss"]))
    recs = []
    for key, g in ok.groupby(CELL_KEYS, sort=False, dropna=False):
        loss, method, variant, sp = key
        rec = dict(zip(CELL_KEYS, key), label=method_label(method, variant), runs=len(g),
                   granularity=g["granularity"].iloc[0], sp_target=g["sp_target"].iloc[0],
                   _sort=(losses.index(loss), g["_order"].iloc[0], variant, sp))
        for c in ("macs", "params", "rel_macs", "rel_params", "macs_reduction",
                  "params_reduction", "weight_sparsity"):
            rec[c] = float(g[c].mean()) if g[c].notna().any() else math.nan
        rec["params_reduction"] = 1.0 - rec["rel_params"]
        for m in metrics:
            rec[f"acc:{m}"] = _interval([a.get(m, math.nan) for a in g["_acc"]],
                                        list(g["n_eval"]))
        recs.append(rec)
    cells = pd.DataFrame(recs)
    if cells.empty:
        return cells
    return cells.sort_values("_sort", kind="stable").reset_index(drop=True)


def dense_cost(cells: pd.DataFrame, axis: str) -> float:
    """The dense model's MACs (``axis="rel_macs"``) or parameter count (``"rel_params"``),
    ``cost / relative cost`` of the cells that measure it exactly (masked models' stored
    parameter count includes their zeros, so they are left out for parameters)."""
    col = "macs" if axis == "rel_macs" else "params"
    exact = cells if axis == "rel_macs" else cells[cells["granularity"] != "weight"]
    vals = (exact[col] / exact[axis]).dropna()
    return float(vals.median()) if len(vals) else math.nan
