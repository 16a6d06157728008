"""Statistics of the report: thin, documented wrappers of scipy.stats and statsmodels.

Nothing here is hand-written statistics; each function names the library routine it calls, and
tests/test_report_stats.py checks every one against that routine on fixed inputs.

- :func:`wilson` -- Wilson score interval of one accuracy over its examples (Wilson 1927;
  ``statsmodels.stats.proportion.proportion_confint(method="wilson")``).
- :func:`t_interval` -- mean, sample std and Student-t interval over seeds / folds
  (``scipy.stats.t.interval``, df = n - 1).
- :func:`mcnemar_exact` -- exact McNemar test of paired correct/incorrect flags (McNemar 1947;
  ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``: binomial test of the discordant
  pairs at 1/2). With several seeds the 2x2 tables are **summed** over seeds (a stratified exact
  test: under H0 each seed's discordant pairs split 1/2 : 1/2, and a sum of independent
  Binomial(n_s, 1/2) is Binomial(sum n_s, 1/2)); it conditions on the trained models.
- :func:`paired_bootstrap` -- percentile bootstrap over examples of the mean paired difference
  (Efron & Tibshirani 1993; ``scipy.stats.bootstrap(paired=True, method="percentile")``); with
  several seeds the same examples are resampled for every seed (they are the same test points)
  and the statistic is the mean over seeds of the per-seed difference.
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
from statsmodels.stats.proportion import proportion_confint

__all__ = ["CONFIDENCE", "Interval", "wilson", "t_interval", "mcnemar_exact",
           "discordant", "paired_bootstrap", "holm"]

#: every interval of the report is a 95 % interval
CONFIDENCE = 0.95


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
        """True if ``value`` lies outside the closed interval."""
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

    All values equal: the interval is the point itself (zero spread gives no t-scale).
    """
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, n=0)
    mean = float(x.mean())
    if len(x) == 1:
        return Interval(mean, math.nan, math.nan, n=1)
    std = float(x.std(ddof=1))
    if std == 0.0:
        return Interval(mean, mean, mean, n=len(x), std=0.0)
    lo, hi = sps.t.interval(confidence, df=len(x) - 1, loc=mean, scale=sps.sem(x))
    return Interval(mean, float(lo), float(hi), n=len(x), std=std)


def discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(examples only ``a`` gets right, examples only ``b`` gets right) of two bool flag rows."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return int((a & ~b).sum()), int((~a & b).sum())


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (statsmodels ``mcnemar``).

    For several seeds pass the counts summed over seeds (stratified exact test, module doc).
    """
    if only_a + only_b == 0:
        return 1.0
    return float(mcnemar([[0, only_a], [only_b, 0]], exact=True).pvalue)


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
