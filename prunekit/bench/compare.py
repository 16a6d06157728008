"""Paired comparisons of every method against a reference method on the same test examples.

Pairing. A run is paired with the reference's run of the same dataset, model, eps, loss, seed
and fold, at the same target sparsity if the reference has one, else at the reference's only
sparsity (``dense``, the default reference, has one: 0 %); the reference variant is the run's own
variant if the reference has it, else the reference's unnamed (or only) variant. (Duplicate runs
of one cell, seed and fold are reduced to the newest before this: prunekit.bench.cells.) A pair
counts only where both runs have a per-example file with identical ``index`` arrays and the
compared flag row (``clean``, ``worst`` or an attack name), and, for ``worst``, the same attacks
behind it (a worst case over other attacks is another metric). If the paired seeds evaluated
different example sets, the seeds of the most common set are used -- for the point estimate,
the interval and the test alike -- and the note says how many.

Per metric and table cell (loss x method x variant x sparsity) with S paired seeds/folds:

- the difference in points: mean over seeds of the per-seed paired difference;
- its 95 % interval: paired percentile bootstrap over the examples, the same resampled examples
  for every seed (:func:`prunekit.bench.stats.paired_bootstrap`);
- with S >= 2 also the Student-t interval over the S per-seed differences (training noise);
- p: with S = 1 the exact McNemar test; with S >= 2 the example-level sign-flip permutation test
  of the per-example sums over seeds (:func:`prunekit.bench.stats.sign_flip_test`: the seeds
  share the test examples, so their 2x2 tables must not be summed); Holm-corrected over every
  test of the table;
- with S >= 2 the seed-level test (:func:`prunekit.bench.stats.seed_t_test`: the seed is the
  unit, the examples are nested in it -- each seed contributes its mean paired difference;
  ``p_seed``, Holm-corrected over the table's seed-level tests: ``p_seed_holm``) and the
  minimum detectable difference at 80 % power from the observed seed std (``mdd``, points;
  :func:`prunekit.bench.stats.min_detectable_difference`), printed beside the difference: a
  non-significant difference smaller than ``mdd`` is "not detectable with these seeds", not
  "no difference";
- **significant**, one seed: Holm-adjusted example-level p < 0.05 (the uncertainty unit is the
  examples of one trained model: training noise is not measured, and the report says so);
  several seeds: the **seed-level test decides** -- Holm-adjusted ``p_seed`` < 0.05 -- and the
  example-level test must reject too (Holm-adjusted p < 0.05). The seeds are evaluated on the
  same test examples, so the seed-level test conditions on that test set and the example-level
  test on the trained models; rejecting only when both reject is an intersection-union test
  (Berger 1982), of level <= 5 %, and says the difference survives retraining *and* another
  draw of test examples. (An interval with zero spread over seeds has no bounds: ``p_seed`` is
  NaN and nothing is significant.) With two or three seeds the seed test has df 1-2: few
  differences pass, by design, and ``mdd`` says how large a difference had to be.

Training budget (prunekit.bench.budget): ``passes_ratio`` / ``cpu_ratio`` = the cell's mean
training forward passes / CPU seconds relative to the reference cell's, ``budget_note`` when
the epochs after pretraining (or the pretraining, or the passes beyond 5 %) differ.

Across model families (``compare(..., absolute_costs=True)``, ``prunekit report --versus`` of a
method of another model, e.g. LRNAS's searched network against pruned vgg-small rows): the
pairing is the same (same loss, seed, fold and identical per-example ``index``), and the cost
ratios are of the absolute measured MACs and non-zero parameters (each family's ``rel_*`` is
relative to its own dense model).

The verdict comes from the test, not from the bootstrap interval; where they disagree
(:attr:`Comparison.disagreement`) the report says why.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from prunekit.bench.budget import budget_note, cell_budget
from prunekit.bench.cells import CELL_KEYS, REPLICATE_KEYS
from prunekit.bench.examples import flag_row, same_examples
from prunekit.bench.labels import WORST
from prunekit.bench.stats import CONFIDENCE, Interval, discordant, holm, mcnemar_exact, \
    min_detectable_difference, paired_bootstrap, seed_t_test, sign_flip_test, t_interval
from prunekit.errors import ConfigError
from prunekit.eval.examples import Examples

__all__ = ["Comparison", "compare", "pick_reference", "REPLICATE_KEYS", "MCNEMAR", "SIGN_FLIP"]

#: names of the two tests (``Comparison.test``)
MCNEMAR, SIGN_FLIP = "exact McNemar", "sign-flip permutation over examples"
_ALPHA = 1 - CONFIDENCE


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
    test: str = ""
    p: float = math.nan
    p_holm: float = math.nan
    tests: int = 0
    significant: bool = False
    macs_ratio: float = math.nan
    params_ratio: float = math.nan
    note: str = ""
    #: seed-level t-test p (S >= 2), Holm-adjusted over the table's seed-level tests, their
    #: number, and the minimum detectable difference in points (80 % power)
    p_seed: float = math.nan
    p_seed_holm: float = math.nan
    seed_tests: int = 0
    mdd: float = math.nan
    #: training cost relative to the reference (prunekit.bench.budget); why it differs
    passes_ratio: float = math.nan
    cpu_ratio: float = math.nan
    budget_note: str = ""

    @property
    def basis(self) -> str:
        """What the verdict rests on: ``seeds`` (several seeds: the seed-level test, with the
        example-level test), ``examples`` (one seed), or empty (not paired)."""
        return "" if not self.paired else "examples" if self.seeds == 1 else "seeds"

    @property
    def paired(self) -> bool:
        """True if at least one seed was paired on this metric."""
        return self.seeds > 0

    @property
    def disagreement(self) -> str:
        """Why the verdict differs from what the bootstrap interval alone suggests (it excludes
        0 but the difference is not significant, or the reverse); empty if they agree."""
        d = self.diff
        if not self.paired or d is None or d.excludes(0.0) == self.significant:
            return ""
        if self.significant:
            if self.seeds > 1:
                return ("the seed-level and the example-level tests reject (p < 0.05 after Holm) "
                        "although the bootstrap interval includes 0")
            return f"{self.test} p < 0.05 decides although the bootstrap interval includes 0"
        if not self.p < _ALPHA:
            return (f"the bootstrap interval excludes 0, but the {self.test} test does not reject "
                    f"(p {self.p:.3g}; {self.only_method + self.only_reference} discordant "
                    f"examples: a bootstrap over few of them is too narrow)")
        if not self.p_holm < _ALPHA:
            return (f"the bootstrap interval excludes 0 and p {self.p:.3g}, but not after Holm's "
                    f"correction over {self.tests} tests")
        if math.isnan(self.p_seed):
            return ("the bootstrap interval (test-set noise) excludes 0, but the t-interval over "
                    "seeds does not (no spread over seeds: unknown)")
        if not self.p_seed < _ALPHA:
            return (f"the bootstrap interval (test-set noise) excludes 0, but the t-interval over "
                    f"seeds does not (seed-level p {self.p_seed:.3g}, {self.seeds} seeds)")
        return (f"the bootstrap interval excludes 0 and the seed-level p {self.p_seed:.3g}, but "
                f"not after Holm's correction over {self.seed_tests} seed-level tests")


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


def _pairs(cell: pd.DataFrame, refs: pd.DataFrame,
           metric: str) -> tuple[list[tuple[Examples, Examples]], set[str]]:
    """The (method, reference) per-example pairs of ``cell`` on ``metric``, and why others are
    not pairs."""
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
        elif metric == WORST and set(a.attacks) != set(b.attacks):
            reasons.add("worst case over different attacks")
        else:
            pairs.append((a, b))
    return pairs, reasons


def _compare_cell(cell: pd.DataFrame, refs: pd.DataFrame, metric: str,
                  n_resamples: int, seed: int) -> tuple[dict, str]:
    pairs, reasons = _pairs(cell, refs, metric)
    if not pairs:
        return {}, "; ".join(sorted(reasons)) or "no reference run"
    sets = Counter(a.index.tobytes() for a, _ in pairs)
    common = sets.most_common(1)[0][0]
    used = [(a, b) for a, b in pairs if a.index.tobytes() == common]
    notes = [] if len(used) == len(pairs) else [
        f"{len(used)} of {len(pairs)} seeds (the others evaluated other test examples)"]
    rows_a = [a[metric] for a, _ in used]
    rows_b = [b[metric] for _, b in used]
    counts = [discordant(x, y) for x, y in zip(rows_a, rows_b)]
    per_seed = [100.0 * (x.mean() - y.mean()) for x, y in zip(rows_a, rows_b)]
    one = len(used) == 1
    out = dict(seeds=len(used), n=len(used[0][0].index),
               only_method=sum(c[0] for c in counts), only_reference=sum(c[1] for c in counts),
               test=MCNEMAR if one else SIGN_FLIP,
               p=mcnemar_exact(*counts[0]) if one else sign_flip_test(rows_a, rows_b,
                                                                      n_resamples, seed))
    boot = paired_bootstrap(rows_a, rows_b, n_resamples=n_resamples, seed=seed)
    out["diff"] = Interval(float(np.mean(per_seed)), boot.lo, boot.hi, n=len(used))
    if not one:
        out["seed_t"] = t_interval(per_seed)
        out["p_seed"] = seed_t_test(per_seed)
        out["mdd"] = min_detectable_difference(per_seed)
    return out, "; ".join(notes + sorted(reasons))


def compare(ok: pd.DataFrame, reference: str, metrics: Sequence[str] = ("clean", "worst"),
            n_resamples: int = 9999, seed: int = 0,
            order: Sequence[tuple[str, str, str, float]] | None = None,
            absolute_costs: bool = False) -> list[Comparison]:
    """Comparisons of every cell of ``ok`` (one dataset x model x eps, or with
    ``absolute_costs`` the rows of one model plus the reference's rows of another: module doc;
    a ``_pe`` column holds each run's per-example ``Examples`` or None; ``rel_macs`` /
    ``rel_params`` the costs relative to dense, ``macs`` / ``nonzero`` the absolute ones)
    against ``reference``, Holm-corrected together. ``order``: cells in display order.
    ``n_resamples`` / ``seed``: of the bootstrap and of the Monte-Carlo permutation test."""
    ref = ok[ok["method"] == reference]
    cells = {k: g for k, g in ok.groupby(CELL_KEYS, sort=False, dropna=False)}
    keys = [k for k in (order or list(cells)) if k in cells]
    axes = ("macs", "nonzero") if absolute_costs else ("rel_macs", "rel_params")
    out: list[Comparison] = []
    for key in keys:
        loss, method, variant, sparsity = key
        if method == reference:
            continue
        cell = cells[key]
        refs = _reference_rows(ref, loss, variant, sparsity)
        budget = cell_budget(cell), cell_budget(refs)
        for metric in metrics:
            c = Comparison(loss, method, variant, float(sparsity), metric, reference)
            if len(refs):
                c.macs_ratio = _ratio(cell[axes[0]], refs[axes[0]])
                c.params_ratio = _ratio(cell[axes[1]], refs[axes[1]])
                c.passes_ratio = _num_ratio(budget[0].passes, budget[1].passes)
                c.cpu_ratio = _num_ratio(budget[0].cpu_s, budget[1].cpu_s)
                c.budget_note = budget_note(budget[0], budget[1], reference)
                fields, c.note = _compare_cell(cell, refs, metric, n_resamples, seed)
                for k, v in fields.items():
                    setattr(c, k, v)
            else:
                c.note = f"no {reference} run to pair with"
            out.append(c)
    _verdicts(out)
    return out


def _num_ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else math.nan


def _verdicts(out: list[Comparison]) -> None:
    """Holm over the table's example-level tests and, separately, over its seed-level tests;
    then each comparison's verdict (module doc)."""
    reject, adjusted = holm([c.p for c in out])
    tests = sum(c.paired for c in out)
    multi = [c for c in out if c.seeds > 1]
    _, seed_adj = holm([c.p_seed for c in multi])
    for c, q in zip(multi, seed_adj):
        c.p_seed_holm, c.seed_tests = q, len(multi)
    for c, r, q in zip(out, reject, adjusted):
        c.p_holm, c.tests = q, tests
        c.significant = bool(r) and (c.seeds <= 1 or c.p_seed_holm < _ALPHA)
