"""How many seeds a grid needs to rank methods: the seed spread of the paired differences and
the minimum detectable difference (MDD) at 80 % power (issue 19; docs/results.md).

For every (method, sparsity) of a results CSV and a reference method (default
``random-channel``) run at the same sparsity, the per-seed difference in a metric (default
worst-case accuracy, in points) is taken over the seeds both have; printed are its mean, its
sample std, the MDD of the seed-level two-sided t-test with the seeds at hand
(``prunekit.bench.stats.min_detectable_difference``, statsmodels ``TTestPower``) and the seeds
that would detect a difference of each ``--effect`` with 80 % power at that std. The dense
reference (``--reference dense``) pairs every sparsity with the dense row of the same seed.

    python benchmarks/perf/seed_power.py benchmarks/results/fmnist-structured/results.csv \\
        [--reference random-channel] [--metric worst_acc] [--effect 2 3 5]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats as sps
from scipy.integrate import quad
from statsmodels.stats.power import TTestPower

from prunekit.bench.stats import CONFIDENCE, POWER, min_detectable_difference


def power(effect_size: float, n: int, alpha: float = 1 - CONFIDENCE) -> float:
    """Power of the two-sided one-sample t-test with ``n`` seeds at a standardised effect,
    ``P(|Z + nc| > t_crit sqrt(V / df))`` with ``nc = effect_size sqrt(n)``, ``V ~ chi2(df)``,
    statsmodels' ``TTestPower.power``, or where it (and scipy's ``nct``) returns NaN at large
    noncentralities with few seeds (measured: effect 6.25, 2 seeds) the integral over V (scipy
    ``quad``; equal to statsmodels to 1e-9 where that is finite, tests/test_seed_power.py)."""
    exact = float(TTestPower().power(effect_size=effect_size, nobs=n, alpha=alpha,
                                     alternative="two-sided"))
    if not math.isnan(exact):
        return exact
    df, nc = n - 1, effect_size * math.sqrt(n)
    crit = sps.t.ppf(1 - alpha / 2, df)

    def given(v: float) -> float:
        c = crit * math.sqrt(v / df)
        return (sps.norm.sf(c - nc) + sps.norm.cdf(-c - nc)) * sps.chi2.pdf(v, df)

    lo, hi = sps.chi2.ppf(1e-13, df), sps.chi2.isf(1e-13, df)     # where V's mass is
    return float(min(1.0, quad(given, lo, hi, points=[df], limit=200)[0]))


def seeds_needed(std: float, effect: float, cap: int = 200) -> int | None:
    """Smallest seed count whose two-sided one-sample t-test detects ``effect`` (points) with
    80 % power at the per-seed std ``std``; None if above ``cap`` or the std is unknown."""
    if math.isnan(std) or not std > 0:
        return None
    if power(effect / std, cap) < POWER:
        return None
    lo, hi = 1, cap                       # power grows with n: bisect for the first n >= POWER
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(effect / std, mid) >= POWER else (mid, hi)
    return max(hi, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--reference", default="random-channel")
    ap.add_argument("--metric", default="worst_acc", help="CSV column (a fraction)")
    ap.add_argument("--effect", type=float, nargs="+", default=[2.0, 3.0, 5.0],
                    help="differences (points) to size the seeds for")
    args = ap.parse_args()
    d = pd.read_csv(args.csv)
    d = d[d.status == "ok"]
    if args.metric not in d.columns:
        raise SystemExit(f"unknown metric {args.metric!r}; numeric columns: "
                         f"{', '.join(c for c in d.columns if c.endswith('_acc'))}")
    ref = d[d.method == args.reference]
    if ref.empty:
        raise SystemExit(f"no {args.reference!r} rows; methods: {', '.join(sorted(d.method.unique()))}")
    dense_ref = args.reference == "dense"
    head = " | ".join(f"seeds for {e:g} pt" for e in args.effect)
    print(f"| method | target | seeds | mean diff vs {args.reference} (points) | std of the "
          f"per-seed diff | MDD at these seeds | {head} |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(args.effect))
    stds = []
    for (method, sp), g in d[d.method != args.reference].groupby(["method", "target_sparsity"]):
        r = ref if dense_ref else ref[np.isclose(ref.target_sparsity, sp)]
        both = g.merge(r, on="seed", suffixes=("", "_ref"))
        if len(both) < 2:
            continue
        diff = 100 * (both[args.metric] - both[f"{args.metric}_ref"]).to_numpy()
        std = float(diff.std(ddof=1))
        stds.append(std)
        mdd = min_detectable_difference(diff)
        need = " | ".join(str(seeds_needed(std, e) or "> 200") for e in args.effect)
        print(f"| {method} | {sp:g} | {len(diff)} | {diff.mean():+.1f} | {std:.1f} | {mdd:.1f} | "
              f"{need} |")
    if stds:
        med = float(np.median(stds))
        need = ", ".join(f"{e:g} pt: {seeds_needed(med, e) or '> 200'}" for e in args.effect)
        print(f"\nMedian std of the per-seed differences {med:.1f} points; seeds for 80 % power "
              f"at that std: {need}.")


if __name__ == "__main__":
    main()
