"""The report's paired-comparison tables (prunekit.bench.compare computes them): the columns,
the notes under them, the one-seed / several-seeds wording and the training-budget sentence.

Per metric a table shows the difference (points, mean over seeds) with its example-level
bootstrap interval (``*`` = significant), the Holm-adjusted example-level p, and -- when any
row has several seeds -- the seed-level 95 % t-interval, the Holm-adjusted seed-level p and the
minimum detectable difference at 80 % power (``MDD``). Rows compared across model families
(``--versus`` a method of another model) also say which cost matched (non-zero parameters
and/or MACs within 5 %) and the relative gaps. The verdict rule is prunekit.bench.compare's.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from prunekit.bench.budget import CellBudget, budget_sentence, cell_budget
from prunekit.bench.cells import CELL_KEYS
from prunekit.bench.compare import Comparison
from prunekit.bench.labels import method_label
from prunekit.bench.reading import SAME_COST, matched_costs
from prunekit.bench.tables import (MISSING, WARN_MARK, fmt_diff, fmt_gap, fmt_p, fmt_points,
                                   fmt_ratio, fmt_seed_interval)

__all__ = ["comparison_table", "comparison_notes", "table_budget", "matched_text",
           "per_metric"]

_COSTS = ("MACs", "non-zero params")


def matched_text(c: Comparison) -> str:
    """``non-zero params (+2.1 %)``, ``both (MACs -0.4 %, non-zero params +1.0 %)`` or ``none
    (MACs +301.2 %, non-zero params +9.1 %)``: which measured cost is within 5 % of the
    reference's, and every relative gap."""
    gaps = {"MACs": fmt_gap(c.macs_ratio), "non-zero params": fmt_gap(c.params_ratio)}
    match = matched_costs(c)
    if len(match) == 1:
        other = next(n for n in _COSTS if n not in match)
        return f"{match[0]} ({gaps[match[0]]}; {other} {gaps[other]})"
    what = "both" if match else "none"
    return f"{what} (" + ", ".join(f"{n} {g}" for n, g in gaps.items()) + ")"


def comparison_table(comps: Sequence[Comparison], labels: Mapping[str, str],
                     warned: Sequence[tuple] = (), intervals: str = "full",
                     cross: bool = False) -> pd.DataFrame:
    """One row per compared cell: cost ratios to the reference (``cross``: which cost matched
    and the gaps), training passes relative to the reference, then per metric the difference
    (points, bootstrap interval; ``*`` significant) and the Holm-adjusted example-level p, and
    -- if any row has several seeds -- the seed t-interval, the Holm-adjusted seed-level p and
    the MDD; the note says where the interval and the verdict disagree, and why, and where the
    training budget differs. ``warned``: cell keys marked ``†``."""
    several = any(c.seeds > 1 for c in comps)
    rows: dict[tuple, dict[str, str]] = {}
    for c in comps:
        key = (c.loss, c.method, c.variant, c.sparsity)
        rec = rows.setdefault(key, {
            "loss": c.loss, "method": method_label(c.method, c.variant)
                                      + (f" {WARN_MARK}" if key in warned else ""),
            "target": f"{100 * c.sparsity:g}%", "MACs ×ref": fmt_ratio(c.macs_ratio),
            "params ×ref": fmt_ratio(c.params_ratio)})
        if cross:
            rec[f"matched (≤{100 * SAME_COST:g} %)"] = matched_text(c)
        rec.update({"passes ×ref": fmt_ratio(c.passes_ratio), "seeds": str(c.seeds or MISSING),
                    "examples": str(c.n or MISSING), "note": rec.get("note", "")})
        lab = labels.get(c.metric, c.metric)
        rec[f"Δ {lab} (points)"] = fmt_diff(c.diff, None, c.significant, intervals)
        rec[f"p {lab} (Holm)"] = fmt_p(c.p_holm)
        if several:
            if intervals != "none":
                rec[f"seeds 95 % {lab}"] = fmt_seed_interval(c.seed_t, intervals)
            rec[f"p seeds {lab} (Holm)"] = fmt_p(c.p_seed_holm)
            rec[f"MDD {lab}"] = fmt_points(c.mdd)
        for note in (c.note, f"{lab}: {c.disagreement}" if c.disagreement else "",
                     c.budget_note):
            if note and note not in rec["note"]:
                rec["note"] = "; ".join(x for x in (rec["note"], note) if x)
    table = pd.DataFrame(list(rows.values()))
    if not table.empty:
        table = table[[c for c in table.columns if c != "note"] + ["note"]]
        if (table["note"] == "").all():
            table = table.drop(columns="note")
        if (table["passes ×ref"] == MISSING).all():
            table = table.drop(columns="passes ×ref")
    return table


def _metric_columns(lab: str) -> dict[str, str]:
    """The columns of one metric in :func:`comparison_table` -> their header without it."""
    return {f"Δ {lab} (points)": "Δ (points)", f"p {lab} (Holm)": "p (Holm)",
            f"seeds 95 % {lab}": "seeds 95 %", f"p seeds {lab} (Holm)": "p seeds (Holm)",
            f"MDD {lab}": "MDD"}


def per_metric(table: pd.DataFrame, labels: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """``table`` split into one table per metric label (the shared columns, then that metric's
    with the metric left out of the headers: it goes into the caption); for LaTeX, where one
    table of every metric would be scaled past legibility. Each keeps only its metric's notes."""
    metric_cols = {lab: _metric_columns(lab) for lab in labels}
    every = {c for cols in metric_cols.values() for c in cols}
    shared = [c for c in table.columns if c not in every and c != "note"]
    out = []
    for lab, cols in metric_cols.items():
        have = [c for c in cols if c in table.columns]
        if not have:
            continue
        part = table[shared + have].rename(columns=cols)
        if "note" in table.columns:
            others = [f"{o}: " for o in labels if o != lab]
            part = part.assign(note=["; ".join(n for n in str(v).split("; ")
                                               if not any(n.startswith(o) for o in others))
                                     for v in table["note"]])
        out.append((lab, part))
    return out


def table_budget(sub: pd.DataFrame, comps: Sequence[Comparison], reference: str) -> str:
    """The training-budget sentence of one comparison table: every paired cell and the
    reference cells they were paired with (prunekit.bench.budget)."""
    cells = {k: g for k, g in sub.groupby(CELL_KEYS, sort=False, dropna=False)}
    paired = [c for c in comps if c.paired]
    ref_cells = [k for k in cells if k[1] == reference and k[0] in {c.loss for c in paired}]
    budgets: dict[str, CellBudget] = {}
    flagged: dict[str, str] = {}
    for k in ref_cells:
        name = method_label(k[1], k[2]) + (f" {100 * k[3]:g}%" if len(ref_cells) > 1 else "")
        budgets[name] = cell_budget(cells[k])
    for c in paired:
        k = (c.loss, c.method, c.variant, c.sparsity)
        name = f"{method_label(c.method, c.variant)} {100 * c.sparsity:g}%"
        if k in cells:
            budgets.setdefault(name, cell_budget(cells[k]))
        if c.budget_note:
            flagged[name] = c.budget_note
    return budget_sentence(budgets, flagged)


def comparison_notes(ref: str, comps: Sequence[Comparison], n_resamples: int, seed: int,
                     intervals: str, cross_note: str = "") -> str:
    """The paragraph under a comparison table: what Δ, the intervals, the p-values, ``*`` and
    the MDD are, and which uncertainty unit the verdict rests on."""
    several = any(c.seeds > 1 for c in comps)
    one = any(c.seeds == 1 for c in comps)
    lab = method_label(ref)
    text = (f"Difference to {lab} in points (method − {lab}; with several seeds the mean over "
            f"seeds of the per-seed paired differences) on the same examples and seed: paired "
            f"bootstrap 95 % interval over examples (seed {seed})"
            + (", shown as ± its half-width" if intervals == "half" else "")
            + "; p (Holm): example-level, exact McNemar for one seed"
            + (f", for several seeds (they share the test examples) a sign-flip permutation "
               f"test over examples of the per-example sums over seeds ({n_resamples} "
               f"resamples, seed {seed}; exact up to 13 discordant examples)" if several else "")
            + f", Holm-corrected over the {sum(c.paired for c in comps)} tests of this table.")
    if several:
        n_seed = max(c.seed_tests for c in comps)
        text += (" Several seeds: seeds 95 % = Student-t interval over the per-seed differences "
                 "(unit = the seed, examples nested in it); p seeds = the seed-level one-sample "
                 f"t-test of those differences, Holm-corrected over the {n_seed} seed-level tests "
                 "of this table; MDD = the smallest true difference (points) that test detects "
                 "with 80 % power at the 5 % level given the observed seed std "
                 "(statsmodels TTestPower), at the unadjusted 5 % level (after Holm a "
                 "difference must be larger still): a non-significant Δ smaller than the MDD "
                 "is not detectable with these seeds, not shown absent. * with several seeds = "
                 "the "
                 "seed-level test rejects and the example-level test rejects too (both after "
                 "Holm: the difference survives retraining and the test-set draw).")
    if one:
        text += (" One seed" + (" (rows with seeds 1)" if several else "") + ": the uncertainty "
                 "unit is the examples of one trained model -- training noise is not measured, "
                 "so * (Holm-adjusted p < 0.05) says the two trained models differ on this test "
                 "set, not that the methods would under retraining.")
    text += (f" The verdict comes from the tests; where the bootstrap interval alone would say "
             f"otherwise, the note says why. MACs/params ×ref: measured MACs and non-zero "
             f"parameters relative to {lab}; passes ×ref: training forward passes relative to "
             f"{lab}'s.")
    return text + (f" {cross_note}" if cross_note else "")
