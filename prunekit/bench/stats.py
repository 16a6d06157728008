"""Statistics of the report: thin, documented wrappers of scipy.stats and statsmodels.

Nothing here is hand-written statistics; each function names the library routine it calls, and
tests/test_report_stats.py checks every one against that routine on fixed inputs.

- :func:`wilson` -- Wilson score interval of one accuracy over its examples (Wilson 1927;
  ``statsmodels.stats.proportion.proportion_confint(method="wilson")``).
- :func:`t_interval` -- mean, sample std and Student-t interval over seeds / folds
  (``scipy.stats.t.interval``, df = n - 1); no interval (NaN bounds) when the values have no
  spread: a t-interval needs an estimate of the spread, and zero from 2-3 runs is not one.
- :func:`mcnemar_exact` -- exact McNemar test of paired correct/incorrect flags of **one** seed
  (McNemar 1947; ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``: binomial test of
  the discordant pairs at 1/2).
- :func:`sign_flip_test` -- the test of **several** seeds: an example-level sign-flip
  permutation test (Fisher 1935; ``scipy.stats.permutation_test(permutation_type="samples")`` on
  one sample, which flips signs) of ``d_j = sum over seeds of (a_sj - b_sj)``, the per-example
  sum of the paired differences. Why not the 2x2 tables summed over seeds (a "stratified"
  McNemar): the seeds are evaluated on the *same* test examples, so an example that favours one
  method does so in every seed; the summed discordant pairs are not independent and that test
  rejects a true null far too often (12-33 % at a nominal 5 %, /tmp/review/mcnemar_sim.py;
  benchmarks/perf/paired_test_size.py). The examples are the independent units: under "no
  difference" each ``d_j`` is symmetric about 0, and flipping the signs of the ``d_j`` is the
  permutation distribution (exact when there are at most 13 non-zero ``d_j``, else Monte-Carlo
  with a fixed seed). With one seed it is McNemar's test.
- :func:`paired_bootstrap` -- percentile bootstrap over examples of the mean paired difference
  (Efron & Tibshirani 1993; ``scipy.stats.bootstrap(paired=True, method="percentile")``); with
  several seeds the same examples are resampled for every seed (they are the same test points)
  and the statistic is the mean over seeds of the per-seed difference. The interval describes
  the size of a difference; the verdict comes from the test: with few discordant examples a
  bootstrap interval can exclude 0 where the exact test does not reject (5 discordant examples
  all one way: interval [+0.2, +2.0] points, McNemar p 0.0625; BCa: [+0.4, +2.2]), and the
  report then says so.
- :func:`seed_t_test` -- the seed-level test of several seeds (issue 19): the unit is the seed,
  the examples are nested inside it (each seed contributes its mean paired difference over the
  examples), and the test is Student's one-sample t-test of the S per-seed differences
  (``scipy.stats.ttest_1samp``; on balanced data -- every seed on the same examples -- the
  random-intercept mixed model's test of the fixed effect reduces to it). It rejects exactly
  when :func:`t_interval` of the per-seed differences excludes 0.
- :func:`min_detectable_difference` -- the smallest true difference the seed-level test detects
  with 80 % power at the 5 % level, from the observed seed std (``statsmodels.stats.power.
  TTestPower.solve_power`` for the effect size, times the std): what "not significant" can
  and cannot rule out.
- :func:`holm` -- Holm's step-down correction (Holm 1979; ``statsmodels.stats.multitest.
  multipletests(method="holm")``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

__all__ = ["CONFIDENCE", "Interval", "wilson", "t_interval", "mcnemar_exact",
           "sign_flip_test", "discordant", "paired_bootstrap", "holm", "seed_t_test",
           "min_detectable_difference", "POWER"]

#: the power the minimum detectable difference is computed for
POWER = 0.8

#: every interval of the report is a 95 % interval
CONFIDENCE = 0.95
#: a sample std below this (relative to the values' scale) is a rounding error of equal values
#: (e.g. per-seed differences of exactly 10 points computed as 100 * (0.6 - 0.5)): no spread
_NO_SPREAD = 1e-9


def _spread(x: np.ndarray) -> float:
    """Sample std (ddof 1) of ``x`` (len >= 2), 0.0 when it is only floating-point rounding."""
    std = float(x.std(ddof=1))
    return 0.0 if std <= _NO_SPREAD * max(1.0, float(np.abs(x).max())) else std


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval (fractions, or points for differences).

    ``std`` and ``n`` describe the sample behind a t-interval (``n`` = number of seeds/folds;
    ``std`` is NaN for a single run, whose interval is Wilson's over the examples).
    """

    mean: float
    lo: float
    hi: float
    n: int = 1
    std: float = math.nan

    def excludes(self, value: float = 0.0) -> bool:
        """True if ``value`` lies outside the closed interval; False if there is no interval
        (NaN bounds: nothing is excluded)."""
        if math.isnan(self.lo) or math.isnan(self.hi):
            return False
        return not (self.lo <= value <= self.hi)


def wilson(correct: int, total: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of ``correct / total`` (statsmodels ``proportion_confint``)."""
    if total <= 0:
        return Interval(math.nan, math.nan, math.nan)
    lo, hi = proportion_confint(int(correct), int(total), alpha=1 - confidence, method="wilson")
    p = correct / total  # (statsmodels' bound at 0 or n can miss p by a rounding error)
    return Interval(p, min(float(lo), p), max(float(hi), p))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean, sample std (ddof 1) and the Student-t interval of the mean (``scipy.stats.t``).

    All values equal: NaN bounds (std 0.0) -- the spread is unknown, not zero, and
    :meth:`Interval.excludes` is then False.
    """
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, n=0)
    mean = float(x.mean())
    if len(x) == 1:
        return Interval(mean, math.nan, math.nan, n=1)
    std = _spread(x)
    if std == 0.0:
        return Interval(mean, math.nan, math.nan, n=len(x), std=0.0)
    lo, hi = sps.t.interval(confidence, df=len(x) - 1, loc=mean, scale=sps.sem(x))
    return Interval(mean, float(lo), float(hi), n=len(x), std=std)


def discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(examples only ``a`` gets right, examples only ``b`` gets right) of two bool flag rows."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return int((a & ~b).sum()), int((~a & b).sum())


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts of one seed (statsmodels
    ``mcnemar``). Several seeds on the same examples: :func:`sign_flip_test`, not summed counts.
    """
    if only_a + only_b == 0:
        return 1.0
    return float(mcnemar([[0, only_a], [only_b, 0]], exact=True).pvalue)


def sign_flip_test(a: Sequence[np.ndarray], b: Sequence[np.ndarray], n_resamples: int = 9999,
                   seed: int = 0) -> float:
    """Two-sided p-value of the example-level sign-flip permutation test (module doc).

    ``a[s]``, ``b[s]``: bool flags of the two methods for seed ``s`` on the same examples in the
    same order. The statistic is ``sum_j d_j`` with ``d_j = sum_s (a[s][j] - b[s][j])``;
    examples with ``d_j = 0`` are left out (a sign flip does not change them). scipy's
    ``permutation_test`` is exact when ``2**k <= n_resamples`` for the ``k`` non-zero ``d_j``,
    else Monte-Carlo with ``rng=numpy.random.default_rng(seed)`` (deterministic); its Monte-
    Carlo p-value counts the observed statistic (never 0).
    """
    if not len(a) or len(a) != len(b):
        raise ValueError("sign_flip_test needs one flag row per seed for both methods")
    if len({len(x) for x in (*a, *b)}) != 1:
        raise ValueError("sign_flip_test: every seed must have the same examples")
    d = np.sum([np.asarray(x, int) - np.asarray(y, int) for x, y in zip(a, b)], axis=0)
    d = d[d != 0]
    if len(d) < 2:  # 0 or 1 non-zero example: both sign flips are as extreme (scipy needs 2)
        return 1.0

    def total(x: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sum(x, axis=axis)

    res = sps.permutation_test((d,), total, permutation_type="samples", vectorized=True,
                               n_resamples=n_resamples, alternative="two-sided", batch=1000,
                               rng=np.random.default_rng(seed))
    return float(min(1.0, res.pvalue))


def paired_bootstrap(a: Sequence[np.ndarray], b: Sequence[np.ndarray], n_resamples: int = 9999,
                     seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """Paired percentile bootstrap of ``mean_s(mean_j(a[s][j]) - mean_j(b[s][j]))`` in points.

    ``a[s]``, ``b[s]``: bool flags of the two methods on the same examples for seed ``s``; every
    seed has the same examples in the same order. Examples (columns) are resampled, the same
    indices for every seed and both methods (``scipy.stats.bootstrap(paired=True)``), with
    ``rng=numpy.random.default_rng(seed)``: deterministic for a fixed seed.
    """
    if not len(a) or len(a) != len(b):
        raise ValueError("paired_bootstrap needs one flag row per seed for both methods")
    diffs = [np.asarray(x, float) - np.asarray(y, float) for x, y in zip(a, b)]
    n = {len(d) for d in diffs}
    if len(n) != 1:
        raise ValueError("paired_bootstrap: every seed must have the same examples")
    point = 100.0 * float(np.mean([d.mean() for d in diffs]))
    if all(np.all(d == d[0]) for d in diffs) and len({float(d[0]) for d in diffs}) == 1:
        return Interval(point, point, point, n=len(diffs))  # no variation to resample

    def stat(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return 100.0 * np.mean([s.mean(axis=axis) for s in samples], axis=0)

    res = sps.bootstrap(tuple(diffs), stat, paired=True, vectorized=True, method="percentile",
                        n_resamples=n_resamples, confidence_level=confidence, batch=1000,
                        rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Interval(point, float(ci.low), float(ci.high), n=len(diffs))


def seed_t_test(per_seed: Sequence[float]) -> float:
    """Two-sided p of the one-sample t-test of the per-seed differences against 0 (scipy
    ``ttest_1samp``); NaN with fewer than 2 seeds or no spread (the spread is unknown)."""
    x = np.asarray([v for v in per_seed if not math.isnan(v)], dtype=float)
    if len(x) < 2 or _spread(x) == 0.0:
        return math.nan
    return float(sps.ttest_1samp(x, 0.0).pvalue)


def min_detectable_difference(per_seed: Sequence[float], power: float = POWER,
                              alpha: float = 1 - CONFIDENCE) -> float:
    """Minimum detectable difference (same unit as ``per_seed``) of the seed-level two-sided
    t-test with ``len(per_seed)`` seeds: statsmodels' ``TTestPower().solve_power`` effect size
    (exact noncentral t) times the observed sample std; NaN with < 2 seeds or no spread."""
    x = np.asarray([v for v in per_seed if not math.isnan(v)], dtype=float)
    if len(x) < 2 or _spread(x) == 0.0:
        return math.nan
    d = TTestPower().solve_power(effect_size=None, nobs=len(x), alpha=alpha, power=power,
                                 alternative="two-sided")
    return float(d) * float(x.std(ddof=1))


def holm(pvalues: Sequence[float], alpha: float = 1 - CONFIDENCE) -> tuple[list[bool], list[float]]:
    """Holm-corrected p-values and rejections (statsmodels ``multipletests``); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    ok = ~np.isnan(p)
    reject = [False] * len(p)
    adjusted = [math.nan] * len(p)
    if ok.any():
        rej, adj, _, _ = multipletests(p[ok], alpha=alpha, method="holm")
        for i, r, q in zip(np.flatnonzero(ok), rej, adj):
            reject[i], adjusted[i] = bool(r), float(q)
    return reject, adjusted
