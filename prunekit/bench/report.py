"""``prunekit report``: tables with 95 % intervals, paired comparisons, equal-cost views, plots.

One set of tables per (dataset, model, eps) -- runs at different eps are never averaged:

1. **accuracy**: one row per loss x method x variant x target sparsity, with what the sparsity
   targets and the measured costs beside it (MACs, MACs reduction, parameters, non-zero
   parameter reduction), then clean, every attack that ran (labelled by what ran) and the
   per-example worst case, each with its 95 % interval (prunekit.bench.cells);
2. **paired comparisons** against each reference method (``versus``: one or a comma list,
   default ``dense``; one of another model family is paired across families:
   prunekit.bench.versus): difference in points, paired-bootstrap interval, Holm-corrected p
   of the exact McNemar test (one seed) or of the example-level sign-flip test, with several
   seeds the seed-level interval, p and minimum detectable difference, which decide
   (prunekit.bench.compare, prunekit.bench.paired), the training-budget sentence
   (prunekit.bench.budget) and the computed reading (prunekit.bench.reading);
3. **equal cost**: robust accuracy of each method at common measured MACs and at common
   non-zero parameter counts (prunekit.bench.equalcost).

Rows whose method summary warns (not converged, warnings) are marked ``†`` and explained;
duplicate runs of one cell, seed and fold are reduced to the newest and listed. Failed runs are
listed with their one-line errors. With ``plots_dir``: prunekit.bench.plots.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from prunekit.bench.cells import GROUP_KEYS, dense_cost, load_results, metric_names, prepare, \
    summarize
from prunekit.bench.compare import Comparison, compare, pick_reference
from prunekit.bench.paired import comparison_notes, comparison_table, per_metric, table_budget
from prunekit.bench.equalcost import CostPoint, at_cost, common_costs, curve
from prunekit.bench.examples import attack_meta
from prunekit.bench.latex import PREAMBLE
from prunekit.bench.labels import CERTIFIED, CLEAN, WORST, attack_caveat, attack_label, method_label
from prunekit.bench.plots import make_plots
from prunekit.bench.reading import reading
from prunekit.bench.stats import Interval
from prunekit.bench.tables import INTERVALS, WARN_MARK, fmt_acc, fmt_count, fmt_pct, prose, render
from prunekit.bench.versus import pairable_methods, reference_rows, references
from prunekit.errors import ConfigError

__all__ = ["Report", "report", "load_results", "accuracy_table", "comparison_table",
           "equal_cost_table", "render", "summary_line", "DEFAULT_METRICS"]

log = logging.getLogger(__name__)

#: metrics compared against the reference by default
DEFAULT_METRICS = (CLEAN, WORST)
_COST_AXES = {"rel_macs": "MACs", "rel_params": "non-zero params"}


@dataclass
class Report:
    """The rendered report: tables by name, the full text, the computed readings (one per
    table group), comparisons by group, plot files, failed runs, dropped duplicate runs."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    text: str = ""
    readings: dict[str, str] = field(default_factory=dict)
    comparisons: dict[str, list[Comparison]] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_ok: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)  #: (dropped, kept) run ids


def _meta(ok: pd.DataFrame, name: str) -> dict:
    for pe in ok["_pe"]:
        if pe is not None and attack_meta(pe, name):
            return attack_meta(pe, name)
    return {}


def _sparsity(sp: float, target: str) -> str:
    return f"{100 * sp:g}%" + (f" {target}" if target and target != "none" else "")


def accuracy_table(cells: pd.DataFrame, labels: dict[str, str],
                   intervals: str = "full") -> pd.DataFrame:
    """Rows = cells, the target (``50% macs``: the fraction the method was asked to remove of
    what it targets) and the measured costs (MACs, non-zero parameters, both reductions), then
    every metric's ``mean [95 % interval]`` (``intervals``: prunekit.bench.tables.fmt_acc)."""
    rows = []
    for c in cells.to_dict("records"):
        rec = {"loss": c["loss"], "method": c["label"] + (f" {WARN_MARK}" if c["warnings"] else ""),
               "target": _sparsity(c["target_sparsity"], c["sp_target"]),
               "MACs": fmt_count(c["macs"]), "MACs red. %": fmt_pct(c["macs_reduction"]),
               "non-zero params": fmt_count(c.get("nonzero", math.nan)),
               "params red. %": fmt_pct(c["params_reduction"]), "runs": str(c["runs"])}
        for m, lab in labels.items():
            rec[f"{lab} %"] = fmt_acc(c.get(f"acc:{m}"), intervals=intervals)
        rows.append(rec)
    return pd.DataFrame(rows)


def equal_cost_table(cells: pd.DataFrame, metric: str, axis: str,
                     intervals: str = "full") -> tuple[pd.DataFrame, str]:
    """Accuracy on ``metric`` of every method at the common measured costs of ``axis``
    (``rel_macs`` / ``rel_params``), with a notes line; empty if no two methods share a cost."""
    curves, merged, missing = {}, [], []
    for label, g in cells.groupby("label", sort=False):
        pts = [CostPoint(r[axis], iv.mean, iv.lo, iv.hi) for r in g.to_dict("records")
               if (iv := r.get(f"acc:{metric}")) is not None]
        cv = curve(pts)
        if cv is None:
            missing.append(label)
            continue
        curves[label] = cv
        if len(cv.points) < len(pts):
            merged.append(label)
    costs = common_costs(list(curves.values()))
    absolute = dense_cost(cells, axis)
    rows = []
    for cost in costs:
        rec = {f"{_COST_AXES[axis]} (of dense)": f"{100 * cost:.3g}%"
                                                  + (f" ({fmt_count(cost * absolute)})"
                                                     if not math.isnan(absolute) else "")}
        for label, cv in curves.items():
            hit = at_cost(cv, cost)
            rec[label] = "" if hit is None else fmt_acc(Interval(hit[0].acc, hit[0].lo,
                                                                 hit[0].hi), approx=not hit[1],
                                                     intervals=intervals)
        rows.append(rec)
    notes = []
    if merged:
        notes.append(f"Several models at one {_COST_AXES[axis]} cost, the most accurate shown: "
                     f"{', '.join(merged)}.")
    if missing:
        notes.append(f"No measured {_COST_AXES[axis]} cost: {', '.join(missing)} (masked "
                     f"models' non-zero parameters are the CSV's params_reduction, recorded "
                     f"from results schema v2 on).")
    return pd.DataFrame(rows), " ".join(notes)


def _warned(cells: pd.DataFrame) -> dict[tuple, list[str]]:
    """Cell key (loss, method, variant, sparsity) -> its method warnings, for flagged cells."""
    return {(c["loss"], c["method"], c["variant"], c["target_sparsity"]): c["warnings"]
            for c in cells.to_dict("records") if c["warnings"]}


_INTERVAL_NOTE = {
    "full": "95 % intervals: one run, Wilson over its examples; several runs (seeds/folds), "
            "mean ± sample std [t-interval] (no interval when the runs agree exactly: zero "
            "spread is no estimate of it).",
    "half": "Mean ± half-width of the 95 % interval: one run, Wilson over its examples; several "
            "runs (seeds/folds), t-interval over the runs (none when the runs agree exactly).",
    "none": "Means only (95 % intervals: the Markdown report or --intervals full).",
}


def _group_notes(ok: pd.DataFrame, metrics: list[str], cells: pd.DataFrame,
                 intervals: str = "full") -> str:
    attacks = [m for m in metrics if m not in (CLEAN, WORST) and not m.startswith(CERTIFIED)]
    defs = []
    for a in attacks:
        lab, cav = attack_label(a, _meta(ok, a)), attack_caveat(a, _meta(ok, a))
        defs.append(f"{lab} = `{a}`" + (f" ({cav})" if cav else "") if lab != a else f"`{a}`")
    lines = [_INTERVAL_NOTE[intervals] + " Worst case = robust under every attack that ran, "
             "per example. Target = the fraction the method was asked to remove of what it "
             "targets (macs, weights, channels, params); compare the measured costs: MACs, "
             "non-zero params (masked weights not counted) and their reductions from the dense "
             "model."]
    certs = [m for m in metrics if m.startswith(CERTIFIED)]
    if certs:
        lines.append("Certified (" + ", ".join(f"`{m}`" for m in certs) + "): a lower bound on "
                     "robust accuracy (verified L-inf at eps, or randomized-smoothing L2 at a "
                     "radius), never part of the worst case.")
    if defs:
        lines.append("Attacks: " + "; ".join(defs) + ".")
    warned = _warned(cells)
    if warned:
        lines.append(f"{WARN_MARK} The method's own summary (CSV `method_summary`) warns: "
                     + "; ".join(f"{method_label(m, v)} {100 * sp:g}% ({loss}): {', '.join(w)}"
                                 for (loss, m, v, sp), w in warned.items()) + ".")
    no_pe = int(ok["_pe"].isna().sum())
    if no_pe:
        lines.append(f"Per-example results not recorded for {no_pe} of {len(ok)} runs "
                     f"(results written before schema v2 have none): no paired comparison for "
                     f"them; their intervals are Wilson over n_eval.")
    return "\n".join(lines)


def report(csv_path: str | Path, fmt: str = "md", plots_dir: str | Path | None = None,
           versus: str | Sequence[str] | None = None, metrics: Sequence[str] = DEFAULT_METRICS,
           n_resamples: int = 9999, seed: int = 0, intervals: str | None = None,
           plot_formats: Sequence[str] = ("png",), dpi: int = 200) -> Report:
    """Tables, comparisons against ``versus`` on ``metrics`` (and with ``plots_dir`` the plots,
    in ``plot_formats`` at ``dpi``: prunekit.bench.plots) for a results CSV. ``n_resamples`` /
    ``seed``: of the paired bootstrap and of the Monte-Carlo sign-flip test. ``intervals``:
    ``full``, ``half`` (mean ± half-width) or ``none`` (prunekit.bench.tables.fmt_acc); default
    ``full`` for Markdown, ``half`` for LaTeX (the compact form that fits a page)."""
    if fmt not in ("md", "latex"):
        raise ValueError(f"format must be md or latex, got {fmt!r}")
    intervals = intervals or ("half" if fmt == "latex" else "full")
    if intervals not in INTERVALS:
        raise ValueError(f"intervals must be one of {', '.join(INTERVALS)}, got {intervals!r}")
    path = Path(csv_path)
    df = load_results(path)
    ok, dropped = prepare(df, path.parent)
    failed = df[df["status"] != "ok"][["run_id", "method", "loss", "target_sparsity", "error"]]
    rep = Report(failed=failed.reset_index(drop=True), n_ok=len(ok), duplicates=dropped)
    refs = references(versus)
    _check_choices(ok, refs, metrics)
    parts: list[str] = []
    groups = list(ok.groupby(GROUP_KEYS, sort=False, dropna=False))
    group_cells = {}
    for (dataset, model, eps), sub in groups:
        key = f"{dataset}:{model}:{eps:.4g}"
        cells = summarize(sub)
        names = metric_names(sub)
        labels = {m: attack_label(m, _meta(sub, m)) for m in names}
        group_cells[key] = (cells, labels)
        n_eval = ", ".join(str(int(n)) for n in sorted(sub["n_eval"].dropna().unique()))
        what = f"{dataset} / {model} (eps {eps:.4g}; n_eval {n_eval})"
        rep.tables[f"accuracy:{key}"] = t = accuracy_table(cells, labels, intervals)
        parts.append(render(t, fmt, f"{what}: accuracy (%), 95 % intervals",
                            _group_notes(sub, names, cells, intervals), f"accuracy:{key}"))
        parts += _comparisons(rep, key, ok, sub, cells, refs, metrics, labels, fmt, what,
                              n_resamples, seed, intervals)
        robust = WORST if WORST in names else names[-1]
        for axis, axis_name in _COST_AXES.items():
            for loss in dict.fromkeys(cells["loss"]):
                t, notes = equal_cost_table(cells[cells["loss"] == loss], robust, axis, intervals)
                if t.empty:
                    parts.append(prose(f"{what}, {loss}: no two methods were measured at a common "
                                       f"{axis_name} cost, so no equal-cost view on this axis. "
                                       f"{notes}", fmt, comment=True))
                    continue
                tkey = f"equal-{axis_name}:{key}:{loss}"
                rep.tables[tkey] = t
                parts.append(render(t, fmt, f"{what}, {loss}: {labels[robust]} accuracy (%) at "
                                    f"matched {axis_name} (≈ interpolated in log cost)", notes,
                                    tkey))
        if rep.readings.get(key):
            parts.append(prose(rep.readings[key], fmt, comment=True))
    if refs and len(ok):
        _check_paired(rep, ok, refs)
    if not parts:
        parts.append("(no finished runs)")
    if dropped:
        lines = [f"Duplicate runs ({len(dropped)}; same loss, method, variant, sparsity, seed and "
                 f"fold): only the newest (finished_at) is used."] + [
            f"- {a}: dropped, older than {b}" for a, b in dropped]
        parts.append(prose("\n".join(lines), fmt, comment=True))
    if len(failed):
        lines = [f"Failed runs ({len(failed)}):"] + [f"- {r.run_id}: {r.error}"
                                                    for r in failed.itertuples()]
        parts.append(prose("\n".join(lines), fmt, comment=True))
    if fmt == "latex":
        parts.insert(0, prose(f"prunekit report of {path.name}; needs in the preamble: "
                              + PREAMBLE.replace("\n", " "), fmt, comment=True))
    rep.text = "\n\n".join(parts) + "\n"
    if plots_dir is not None and len(ok):
        rep.plots = make_plots(group_cells, Path(plots_dir), formats=plot_formats, dpi=dpi)
    return rep


def _check_choices(ok: pd.DataFrame, versus: Sequence[str], metrics: Sequence[str]) -> None:
    methods = list(dict.fromkeys(ok["method"]))
    bad = [v for v in versus if v not in methods]
    if bad and len(ok):
        raise ConfigError(f"--versus {bad[0]!r}: no finished run of that method; methods: "
                         f"{', '.join(methods)}")
    valid = metric_names(ok) if len(ok) else list(DEFAULT_METRICS)
    bad = [m for m in metrics if m not in valid]
    if bad:
        raise ConfigError(f"--metrics {', '.join(bad)}: not measured; valid: {', '.join(valid)}")


def _check_paired(rep: Report, ok: pd.DataFrame, versus: Sequence[str]) -> None:
    """An explicit ``--versus`` that pairs no run anywhere is an error naming the methods that
    can be a reference (prunekit.bench.versus.pairable_methods)."""
    for ref in versus:
        if not any(c.paired for comps in rep.comparisons.values() for c in comps
                   if c.reference == ref):
            valid = [m for m in pairable_methods(ok) if m != ref]
            raise ConfigError(
                f"--versus {ref!r}: no run pairs with a {ref} run on the same evaluation "
                f"examples (same dataset, eps, loss, seed, fold and per-example index); "
                + (f"methods that pair: {', '.join(valid)}" if valid else
                   "no two runs of this file pair (per-example files missing or on other "
                   "examples)"))


def _comparisons(rep: Report, key: str, ok: pd.DataFrame, sub: pd.DataFrame,
                 cells: pd.DataFrame, versus: Sequence[str], metrics: Sequence[str],
                 labels: dict[str, str], fmt: str, what: str, n_resamples: int, seed: int,
                 intervals: str = "full") -> list[str]:
    methods = list(dict.fromkeys(cells["method"]))
    refs = list(versus) or [r for r in [pick_reference(methods, None)] if r]
    parts: list[str] = []
    readings: list[str] = []
    for ref in refs:
        ref_rows, other = reference_rows(ok, sub, ref)
        if ref_rows.empty:
            parts.append(prose(f"No {ref} run in {what} (nor on another model at this dataset "
                               f"and eps): no paired comparisons against it.", fmt, comment=True))
            continue
        if not other and len(methods) < 2:
            continue
        pool = pd.concat([sub, ref_rows]) if other else sub
        order = [tuple(r) for r in cells[["loss", "method", "variant", "target_sparsity"]].values]
        comps = compare(pool, ref, [m for m in metrics if m in labels], n_resamples, seed, order,
                        absolute_costs=bool(other))
        if not comps:
            continue
        rep.comparisons.setdefault(key, []).extend(comps)
        tkey = f"comparison:{key}" + (f":{ref}" if len(refs) > 1 else "")
        if not any(c.paired for c in comps):
            parts.append(prose(f"Paired comparisons against {ref}: unavailable -- no pair of "
                               f"runs has per-example results on the same examples (results "
                               f"written before results schema v2 have none). The intervals "
                               f"above are Wilson intervals over each run's n_eval examples.",
                               fmt, comment=True))
            continue
        warned = _warned(cells)
        t = comparison_table(comps, labels, list(warned), intervals, cross=bool(other))
        rep.tables[tkey] = t
        lab = method_label(ref)
        cross = (f"Across model families: {lab} ran on {other}, the rows on "
                 f"{sub['model'].iloc[0]}; paired on the same evaluation examples (identical "
                 f"per-example index), same loss, seed index and fold; MACs/params ×ref are the "
                 f"absolute measured MACs and non-zero parameters; matched = the costs within "
                 f"5 % of {lab}'s, with every relative gap.") if other else ""
        notes = comparison_notes(ref, comps, n_resamples, seed, intervals, cross) + "\n" + \
            table_budget(pool, comps, ref)
        caption = f"{what}: paired comparison against {ref}" + (
            f" ({other}, across model families)" if other else "")
        if fmt == "latex":  # one float per metric: all of them in one would not be legible
            used = [labels[m] for m in metrics if m in labels]
            parts += [render(part, fmt, f"{caption}: {lab}", notes, f"{tkey}:{lab}")
                      for lab, part in per_metric(t, used)]
        else:
            parts.append(render(t, fmt, caption, notes, tkey))
        robust = WORST if WORST in metrics else metrics[-1]
        attacks = [m for m in labels if m not in (CLEAN, WORST) and not m.startswith(CERTIFIED)]
        readings.append(reading(comps, robust, f"{labels.get(robust, robust)} = "
                                + (f"per example, robust under every attack "
                                   f"({', '.join(attacks)})"
                                   if robust == WORST else "accuracy"), warned))
    if readings:
        rep.readings[key] = "\n".join(r for r in readings if r)
    return parts


def summary_line(rep: Report) -> str:
    """One line: how many runs are in the report."""
    return f"{rep.n_ok} finished runs, {len(rep.failed)} failed"
