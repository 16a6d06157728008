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

Duplicates: two ``ok`` rows of one cell with the same seed and fold (e.g. the same point run
again under another grid name or recipe) are not two replicates: only the newest
(``finished_at``) is kept, and :func:`prepare` returns the dropped run ids for the report to list.

Method warnings: a run whose ``method_summary`` JSON says ``"converged": false`` or holds a
non-empty ``"warnings"`` list (:func:`method_warnings`) is flagged; a cell lists its runs' flags
in ``warnings`` (the report marks the row and says so in the reading).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from prunekit.bench.examples import load_per_example
from prunekit.bench.labels import CERTIFIED, CLEAN, WORST, method_label, method_sort_key, row_accuracies
from prunekit.bench.stats import Interval, t_interval, wilson
from prunekit.bench.store import COLUMNS, ResultsStore

__all__ = ["load_results", "prepare", "summarize", "metric_names", "dense_cost",
           "method_warnings", "CELL_KEYS", "GROUP_KEYS", "REPLICATE_KEYS"]

#: one table per group; one row per cell
GROUP_KEYS = ["dataset", "model", "eps"]
CELL_KEYS = ["loss", "method", "variant", "target_sparsity"]
#: runs of one cell that differ in these are replicates
REPLICATE_KEYS = ["seed", "fold"]
_NUMERIC = ["target_sparsity", "weight_sparsity", "macs_reduction", "params", "macs", "eps",
            "n_eval", "clean_acc", "pgd_acc", "apgd_acc", "aa_acc", "worst_acc", "train_s",
            "eval_s", "params_reduction", "seed", "fold", "nonzero_params"]
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


def method_warnings(summary: Any) -> list[str]:
    """What a run's ``method_summary`` (JSON text or dict) warns about: ``"not converged"`` if
    it says ``"converged": false``, then each entry of a ``"warnings"`` list; [] if nothing."""
    if isinstance(summary, str):
        try:
            summary = json.loads(summary) if summary.strip() else {}
        except json.JSONDecodeError:
            return ["unreadable method_summary"]
    if not isinstance(summary, dict):
        return []
    out = ["not converged"] if summary.get("converged") is False else []
    warns = summary.get("warnings")
    if isinstance(warns, str):
        warns = [warns]
    if isinstance(warns, (list, tuple)):
        out += [str(w) for w in warns if str(w)]
    return out


def _dedupe(ok: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Keep the newest ``finished_at`` row per group, cell, seed and fold; returns the kept
    rows (original order) and ``(dropped run_id, kept run_id)`` pairs."""
    keys = [*GROUP_KEYS, *CELL_KEYS, *REPLICATE_KEYS]
    key = [tuple(None if pd.isna(v) else v for v in r) for r in ok[keys].itertuples(index=False)]
    when = ok["finished_at"].fillna("").astype(str).tolist()
    order = sorted(range(len(ok)), key=lambda i: when[i])   # stable: file order among equals
    newest = {key[i]: i for i in order}                     # the newest row of each key wins
    keep = set(newest.values())
    ids = ok["run_id"].tolist()
    dropped = [(ids[i], ids[newest[key[i]]]) for i in order if i not in keep]
    return ok.iloc[sorted(keep)].reset_index(drop=True), dropped


def prepare(df: pd.DataFrame, csv_dir: Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The ``ok`` rows of ``df``, duplicates dropped (module doc), with ``_acc`` (metric ->
    accuracy), ``_pe`` (the per-example file or None), ``rel_macs``, ``rel_params``,
    ``sp_target``, ``_warn`` (:func:`method_warnings`) and ``_order`` (sort key); and the
    dropped duplicates as ``(dropped run_id, kept run_id)``."""
    ok, dropped = _dedupe(df[df["status"] == "ok"].copy().reset_index(drop=True))
    ok["_acc"] = [row_accuracies(r) for r in ok.to_dict("records")]
    ok["_pe"] = [load_per_example(csv_dir, rel, rid) for rel, rid in zip(ok["examples"],
                                                                         ok["run_id"])]
    ok["rel_macs"] = 1.0 - ok["macs_reduction"]
    pr = ok["params_reduction"].copy()
    dense = ok[ok["granularity"] == "none"].groupby("pretrain_hash")["params"].mean()
    for i, r in ok[pr.isna()].iterrows():
        if r["granularity"] == "none":
            pr[i] = 0.0
        elif r["granularity"] == "channel" and r["pretrain_hash"] in dense.index:
            pr[i] = 1.0 - r["params"] / dense[r["pretrain_hash"]]
    ok["rel_params"] = 1.0 - pr
    ok["nonzero"] = _nonzero(ok, dense)
    ok["sp_target"] = [t or _TARGET_OF.get(g, "") for t, g in zip(ok["sparsity_target"],
                                                                  ok["granularity"])]
    ok["_order"] = [method_sort_key(m, g) for m, g in zip(ok["method"], ok["granularity"])]
    ok["_warn"] = [method_warnings(v) for v in ok["method_summary"]]
    return ok, dropped


def _nonzero(ok: pd.DataFrame, dense: pd.Series) -> list[float]:
    """Non-zero parameters per row: the ``nonzero_params`` column (schema v3), else -- older
    files -- ``params`` for dense and channel rows (compacted: every stored parameter counts) and
    ``(1 - params_reduction) * params(dense)`` for masked rows whose dense run is in the file."""
    out = []
    for r in ok.to_dict("records"):
        nz = r.get("nonzero_params", math.nan)
        if nz is None or (isinstance(nz, float) and math.isnan(nz)):
            if r["granularity"] in ("none", "channel", "architecture"):
                nz = r["params"]
            elif r["pretrain_hash"] in dense.index and not math.isnan(r["rel_params"]):
                nz = r["rel_params"] * dense[r["pretrain_hash"]]
            else:
                nz = math.nan
        out.append(float(nz))
    return out


def metric_names(ok: pd.DataFrame) -> list[str]:
    """``clean``, every attack that ran (first-seen order), ``worst``, then the certified
    metrics (``certified:ibp`` ...)."""
    names: dict[str, None] = {}
    for acc in ok["_acc"]:
        names.update(dict.fromkeys(acc))
    rest = [n for n in names if n not in (CLEAN, WORST) and not n.startswith(CERTIFIED)]
    cert = [n for n in names if n.startswith(CERTIFIED)]   # certificates after worst
    return [n for n in (CLEAN, *rest, WORST, *cert) if n in names]


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


def _cell_warnings(per_run: list[list[str]]) -> list[str]:
    counts: dict[str, int] = {}
    for warns in per_run:
        for w in dict.fromkeys(warns):
            counts[w] = counts.get(w, 0) + 1
    return [w if len(per_run) == 1 else f"{w} ({k} of {len(per_run)} runs)"
            for w, k in counts.items()]


def summarize(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of ``ok`` (already one group), in display order: keys, ``label``,
    ``runs``, mean ``macs`` / ``params`` / ``nonzero`` (non-zero params) / ``rel_macs`` / ``rel_params`` / reductions,
    ``sp_target``, ``granularity``, ``warnings`` (the runs' method warnings, ``"not converged
    (2 of 3 runs)"``) and ``acc:<metric>`` :class:`Interval` columns."""
    metrics = metric_names(ok)
    losses = list(dict.fromkeys(ok["loss"]))
    recs = []
    for key, g in ok.groupby(CELL_KEYS, sort=False, dropna=False):
        loss, method, variant, sp = key
        rec = dict(zip(CELL_KEYS, key), label=method_label(method, variant), runs=len(g),
                   granularity=g["granularity"].iloc[0], sp_target=g["sp_target"].iloc[0],
                   _sort=(losses.index(loss), g["_order"].iloc[0], variant, sp),
                   warnings=_cell_warnings(list(g["_warn"])))
        for c in ("macs", "params", "nonzero", "rel_macs", "rel_params", "macs_reduction",
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
