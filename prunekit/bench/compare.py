"""Paired comparisons of every method against a reference method on the same test examples.

Pairing. A run is paired with the reference's run of the same dataset, model, eps, loss, seed
and fold, at the same target sparsity if the reference has one, else at the reference's only
sparsity (``dense``, the default reference, has one: 0 %); the reference variant is the run's own
variant if the reference has it, else the reference's unnamed (or only) variant. A pair counts
only where both runs have a per-example file with identical ``index`` arrays and the compared
flag row (``clean``, ``worst`` or an attack name).

Per metric and table cell (loss x method x variant x sparsity) with S paired seeds/folds:

- the difference in points: mean over seeds of the per-seed paired difference;
- its 95 % interval: paired percentile bootstrap over the examples, the same resampled examples
  for every seed (:func:`prunekit.bench.stats.paired_bootstrap`);
- with S >= 2 also the Student-t interval over the S per-seed differences (training noise);
- the exact McNemar p-value of the 2x2 table summed over seeds (stratified exact test; equals
  the plain exact McNemar test for one seed), Holm-corrected over every test of the table;
- **significant** = Holm-adjusted p < 0.05 and, with S >= 2, a t-interval that excludes 0: the
  difference must survive both the test-set noise (McNemar, conditional on the trained models)
  and the seed-to-seed noise. With two or three seeds the t-interval is wide (df 1-2): few
  differences pass, by design.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from prunekit.bench.examples import flag_row, same_examples
from prunekit.eval.examples import Examples
from prunekit.bench.stats import Interval, discordant, holm, mcnemar_exact, paired_bootstrap, \
    t_interval
from prunekit.config import ConfigError

__all__ = ["Comparison", "compare", "pick_reference", "REPLICATE_KEYS"]

#: columns whose values make runs replicates of one table cell
REPLICATE_KEYS = ("seed", "fold")
_CELL = ["loss", "method", "variant", "target_sparsity"]


@dataclass
class Comparison:
    """One method cell against the reference on one metric (differences in points)."""

    loss: str
    method: str
    variant: str
    sparsity: float
    metric: str
    reference: str
    seeds: int = 0
    n: int = 0
    diff: Interval | None = None
    seed_t: Interval | None = None
    only_method: int = 0
    only_reference: int = 0
    p: float = math.nan
    p_holm: float = math.nan
    significant: bool = False
    macs_ratio: float = math.nan
    params_ratio: float = math.nan
    note: str = ""

    @property
    def paired(self) -> bool:
        """True if at least one seed was paired on this metric."""
        return self.seeds > 0


def pick_reference(methods: Sequence[str], versus: str | None, default: str = "dense") -> str | None:
    """The reference method of a table: ``versus`` if given (must be present), else ``default``
    if present, else the first of ``methods`` (already in registry order)."""
    if versus:
        if versus not in methods:
            raise ConfigError(f"--versus {versus!r} is not a method of this table; methods: "
                             f"{', '.join(methods)}")
        return versus
    if default in methods:
        return default
    return methods[0] if methods else None


def _reference_rows(ref: pd.DataFrame, loss: str, variant: str, sparsity: float) -> pd.DataFrame:
    part = ref[ref["loss"] == loss]
    variants = list(dict.fromkeys(part["variant"]))
    pick = variant if variant in variants else "" if "" in variants else (
        variants[0] if len(variants) == 1 else None)
    part = part[part["variant"] == pick]
    sps = sorted(part["target_sparsity"].dropna().unique())
    if sparsity in sps:
        return part[part["target_sparsity"] == sparsity]
    return part if len(sps) == 1 else part.iloc[0:0]


def _replicate(row: pd.Series) -> tuple:
    return tuple("" if pd.isna(row.get(k)) else row.get(k) for k in REPLICATE_KEYS)


def _ratio(a: pd.Series, b: pd.Series) -> float:
    num, den = float(a.mean()), float(b.mean())
    return num / den if den > 0 and not math.isnan(num) else math.nan


def _compare_cell(cell: pd.DataFrame, refs: pd.DataFrame, metric: str,
                  n_resamples: int, seed: int) -> tuple[dict, str]:
    by_rep = {_replicate(r): r for _, r in refs.iterrows()}
    pairs: list[tuple[Examples, Examples]] = []
    reasons = set()
    for _, r in cell.iterrows():
        ref = by_rep.get(_replicate(r))
        if ref is None:
            reasons.add("no reference run for this seed")
            continue
        a, b = r["_pe"], ref["_pe"]
        if a is None or b is None:
            reasons.add("no per-example results")
        elif not same_examples(a, b):
            reasons.add("different test examples")
        elif flag_row(a, metric) is None or flag_row(b, metric) is None:
            reasons.add(f"{metric} not measured on both")
        else:
            pairs.append((a, b))
    if not pairs:
        return {}, "; ".join(sorted(reasons)) or "no reference run"
    rows_a = [a[metric] for a, _ in pairs]
    rows_b = [b[metric] for _, b in pairs]
    counts = [discordant(x, y) for x, y in zip(rows_a, rows_b)]
    only_m, only_r = sum(c[0] for c in counts), sum(c[1] for c in counts)
    per_seed = [100.0 * (x.mean() - y.mean()) for x, y in zip(rows_a, rows_b)]
    first = pairs[0][0].index
    boot = [i for i, (a, _) in enumerate(pairs) if np.array_equal(a.index, first)]
    note = "" if len(boot) == len(pairs) else f"bootstrap over {len(boot)} of {len(pairs)} seeds"
    out = dict(seeds=len(pairs), n=len(first), only_method=only_m, only_reference=only_r,
               p=mcnemar_exact(only_m, only_r),
               diff=paired_bootstrap([rows_a[i] for i in boot], [rows_b[i] for i in boot],
                                     n_resamples=n_resamples, seed=seed))
    out["diff"] = Interval(float(np.mean(per_seed)), out["diff"].lo, out["diff"].hi,
                           n=len(pairs))
    if len(pairs) >= 2:
        out["seed_t"] = t_interval(per_seed)
    return out, note


def compare(ok: pd.DataFrame, reference: str, metrics: Sequence[str] = ("clean", "worst"),
            n_resamples: int = 9999, seed: int = 0,
            order: Sequence[tuple[str, str, str, float]] | None = None) -> list[Comparison]:
    """Comparisons of every cell of ``ok`` (one dataset x model x eps; a ``_pe`` column holds
    each run's per-example ``Examples`` or None; ``rel_macs`` / ``rel_params`` the costs relative to
    dense) against ``reference``, Holm-corrected together. ``order``: cells in display order."""
    ref = ok[ok["method"] == reference]
    cells = {k: g for k, g in ok.groupby(_CELL, sort=False, dropna=False)}
    keys = [k for k in (order or list(cells)) if k in cells]
    out: list[Comparison] = []
    for key in keys:
        loss, method, variant, sparsity = key
        if method == reference:
            continue
        cell = cells[key]
        refs = _reference_rows(ref, loss, variant, sparsity)
        for metric in metrics:
            c = Comparison(loss, method, variant, float(sparsity), metric, reference)
            if len(refs):
                c.macs_ratio = _ratio(cell["rel_macs"], refs["rel_macs"])
                c.params_ratio = _ratio(cell["rel_params"], refs["rel_params"])
                fields, c.note = _compare_cell(cell, refs, metric, n_resamples, seed)
                for k, v in fields.items():
                    setattr(c, k, v)
            else:
                c.note = f"no {reference} run to pair with"
            out.append(c)
    reject, adjusted = holm([c.p for c in out])
    for c, r, q in zip(out, reject, adjusted):
        c.p_holm = q
        c.significant = bool(r) and (c.seed_t is None or c.seed_t.excludes(0.0))
    return out
