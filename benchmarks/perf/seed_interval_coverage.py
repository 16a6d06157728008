"""Does a hierarchical bootstrap over seeds and examples add value over the report's seed-level
t-test? Coverage of 95 % intervals for the mean paired difference and size of the verdict rules
under a true null with both noise sources (issue 19; recorded in docs/design-decisions.md).

Null model (crossed, as in the grids: every seed is evaluated on the *same* test examples): a
fresh test set per replicate of ``n`` examples with difficulty ``u_j ~ N(0, 1.5)`` on the logit
scale and a method-specific example effect ``v_j ~ N(0, sd_ex)`` (example j favours A by
``+v_j``, B by ``-v_j``: the same examples favour one method in every seed), seed effects
``N(0, sd_seed)`` per method and seed; flags are Bernoulli. By symmetry the population mean
difference is exactly 0. Per replicate:

- ``t over seeds``: prunekit's seed interval (Student-t over the per-seed differences);
- ``nested boot``: resample seeds, then examples *independently within each seed* (the
  hierarchical bootstrap for examples nested in seeds), percentile;
- ``crossed boot``: resample seeds and examples, the same examples for every seed (two-way
  bootstrap for a crossed design), percentile;
- rejection at 5 %: the seed-level t-test alone, and the report's rule (seed-level t-test *and*
  the example-level sign-flip test).

Usage: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/seed_interval_coverage.py
[--reps 400]`` (one Markdown table).
"""
from __future__ import annotations

import argparse

import numpy as np

from prunekit.bench.stats import seed_t_test, sign_flip_test, t_interval


def _flags(rng: np.random.Generator, seeds: int, n: int, sd_seed: float,
           sd_ex: float) -> tuple[np.ndarray, np.ndarray]:
    u = rng.normal(0, 1.5, n)
    v = rng.normal(0, sd_ex, n)
    sa, sb = rng.normal(0, sd_seed, (seeds, 1)), rng.normal(0, sd_seed, (seeds, 1))
    pa, pb = 1 / (1 + np.exp(-(u + v + sa))), 1 / (1 + np.exp(-(u - v + sb)))
    return rng.random((seeds, n)) < pa, rng.random((seeds, n)) < pb


def _boot(d: np.ndarray, rng: np.random.Generator, b: int, nested: bool) -> tuple[float, float]:
    seeds, n = d.shape
    si = rng.integers(0, seeds, (b, seeds))
    if nested:
        ei = rng.integers(0, n, (b, seeds, n))
        stat = d[si[:, :, None], ei].mean(axis=(1, 2))
    else:
        ei = rng.integers(0, n, (b, n))
        stat = d[si[:, :, None], ei[:, None, :]].mean(axis=(1, 2))
    lo, hi = np.percentile(stat, [2.5, 97.5])
    return float(lo), float(hi)


def run(seeds: int, n: int, sd_seed: float, sd_ex: float, reps: int, b: int,
        rng: np.random.Generator) -> dict[str, float]:
    cover = np.zeros(3)
    width = np.zeros(3)
    rej = np.zeros(2)
    for r in range(reps):
        a, bb = _flags(rng, seeds, n, sd_seed, sd_ex)
        d = 100 * (a.astype(float) - bb.astype(float))
        per_seed = d.mean(1)
        t = t_interval(per_seed)
        ivs = [(t.lo, t.hi), _boot(d, rng, b, nested=True), _boot(d, rng, b, nested=False)]
        for i, (lo, hi) in enumerate(ivs):
            ok = not np.isnan(lo)
            cover[i] += ok and lo <= 0 <= hi
            width[i] += (hi - lo) if ok else 0
        p_seed = seed_t_test(per_seed)
        seed_rej = p_seed < 0.05
        rej[0] += seed_rej
        rej[1] += seed_rej and sign_flip_test(list(a), list(bb), n_resamples=999, seed=r) < 0.05
    return {"cover_t": cover[0] / reps, "cover_nested": cover[1] / reps,
            "cover_crossed": cover[2] / reps, "w_t": width[0] / reps,
            "w_nested": width[1] / reps, "w_crossed": width[2] / reps,
            "rej_seed": rej[0] / reps, "rej_rule": rej[1] / reps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--boot", type=int, default=999)
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    print("| seeds | sd seed | sd example | cover t over seeds | cover nested boot | cover crossed "
          "boot | width t / nested / crossed (points) | reject: seed t-test | reject: report rule |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for seeds in (3, 6):
        for sd_seed, sd_ex in ((0.3, 0.0), (0.3, 0.5), (0.05, 0.5), (0.05, 1.5)):
            r = run(seeds, args.n, sd_seed, sd_ex, args.reps, args.boot, rng)
            print(f"| {seeds} | {sd_seed} | {sd_ex} | {100 * r['cover_t']:.1f} % | "
                  f"{100 * r['cover_nested']:.1f} % | {100 * r['cover_crossed']:.1f} % | "
                  f"{r['w_t']:.1f} / {r['w_nested']:.1f} / {r['w_crossed']:.1f} | "
                  f"{100 * r['rej_seed']:.1f} % | {100 * r['rej_rule']:.1f} % |")


if __name__ == "__main__":
    main()
