"""Size (type-I error at nominal 5 %) of the report's multi-seed paired tests under a true null.

The null of the review (issue 13): each test set is drawn afresh from a population in which half
the examples favour method A (per-example accuracy ``hi`` vs ``lo``) and half favour B, so both
methods have the same population accuracy; S seeds of each method are evaluated on the *same*
test examples. Compared, per replicate:

- ``summed McNemar``: the exact McNemar test of the 2x2 tables summed over seeds (the old test);
- ``old rule``: summed McNemar p < 0.05 and the t-interval over seeds excluding 0;
- ``sign-flip``: prunekit.bench.stats.sign_flip_test on the per-example sums over seeds;
- ``new rule``: sign-flip p < 0.05 and the t-interval over seeds excluding 0 (the report's
  "significant", before Holm).

Usage: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/paired_test_size.py [--reps 1000]``
(prints one Markdown table; results recorded in docs/bench.md).
"""
from __future__ import annotations

import argparse

import numpy as np

from prunekit.bench.stats import mcnemar_exact, sign_flip_test, t_interval


def size(n: int, seeds: int, hi: float, lo: float, reps: int, resamples: int,
         rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Rejection rates (summed McNemar, old rule, sign-flip, new rule) over ``reps`` nulls."""
    counts = np.zeros(4)
    for r in range(reps):
        fav = rng.random(n) < 0.5
        pa, pb = np.where(fav, hi, lo), np.where(fav, lo, hi)
        a, b = rng.random((seeds, n)) < pa, rng.random((seeds, n)) < pb
        summed = mcnemar_exact(int((a & ~b).sum()), int((~a & b).sum())) < 0.05
        flip = sign_flip_test(list(a), list(b), n_resamples=resamples, seed=r) < 0.05
        seed_ok = t_interval(list(100 * (a.mean(1) - b.mean(1)))).excludes(0.0)
        counts += [summed, summed and seed_ok, flip, flip and seed_ok]
    return tuple(counts / reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--n", type=int, default=500, help="test examples")
    ap.add_argument("--resamples", type=int, default=999, help="sign-flip resamples")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"n = {args.n} examples, {args.reps} null replicates, {args.resamples} sign-flip "
          f"resamples; rejection rate at nominal 5 %\n")
    print("| per-example acc. (favoured / not) | seeds | summed McNemar | old rule | "
          "sign-flip | new rule |")
    print("|---|---:|---:|---:|---:|---:|")
    for hi, lo in ((0.9, 0.5), (1.0, 0.3), (0.7, 0.6)):
        for seeds in (3, 5):
            rates = size(args.n, seeds, hi, lo, args.reps, args.resamples, rng)
            print(f"| {hi} / {lo} | {seeds} | " + " | ".join(f"{100 * x:.1f} %" for x in rates)
                  + " |")


if __name__ == "__main__":
    main()
