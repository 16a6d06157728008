"""Where a method's seed spread comes from: per-class accuracy across seeds (issue 19;
docs/results.md "fmnist-structured").

A cell's accuracy on the evaluated examples is the class-weighted sum of its per-class
accuracies, ``acc = sum_c w_c acc_c`` with ``w_c`` the class's share of the examples. Over seeds
its variance splits exactly into one term per class,
``Var(acc) = sum_c w_c Cov(acc_c, acc)``: a class's share of the seed variance. A spread carried
by a few classes whose robustness switches on or off between seeds (all-or-nothing) reads
differently from one spread thinly over every class. A share is negative, and the others
then sum past 100 %, where a class's accuracy moves against the total (classes trading
robustness with each other between seeds). For each (method, target) of a results CSV
with per-example files this prints the seed std of the metric (points), the three classes with
the largest share and their per-seed accuracy ranges, and the seed std with those three classes
left out (re-weighted over the rest).

    python benchmarks/perf/class_spread.py benchmarks/results/fmnist-structured/results.csv \\
        [--metric worst] [--target 0.9]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from prunekit.bench.examples import flag_row, load_per_example
from prunekit.registry import DATASETS


def labels_of(dataset: str, index: np.ndarray) -> np.ndarray:
    """The test-split labels of ``dataset`` at ``index`` (the per-example files' own index)."""
    import prunekit.data  # noqa: F401  (registers the builders)
    ds = DATASETS.get(dataset)(split="test")
    return np.asarray(ds.targets)[index]


def class_table(acc: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-class share of the seed variance of ``acc @ w`` (``acc``: seeds x classes) and the
    variance itself; the shares sum to 1 (exact decomposition, sample covariance)."""
    total = acc @ w
    var = float(np.var(total, ddof=1))
    cov = np.array([np.cov(acc[:, c], total, ddof=1)[0, 1] for c in range(acc.shape[1])])
    return (w * cov) / var if var > 0 else np.zeros_like(w), var


def cell_rows(df: pd.DataFrame, csv_dir: Path, metric: str) -> list[dict]:
    """One summary per (method, target) with at least 3 seeds' per-example files."""
    out = []
    for (method, target), cell in df.groupby(["method", "target_sparsity"]):
        per_seed, index = [], None
        for _, row in cell.sort_values("seed").iterrows():
            ex = load_per_example(csv_dir, str(row["examples"] or ""), row["run_id"])
            flags = flag_row(ex, metric) if ex is not None else None
            if flags is None:
                continue
            per_seed.append(flags.astype(float))
            index = ex.index
        if len(per_seed) < 3:
            continue
        y = labels_of(str(cell["dataset"].iloc[0]), index)
        classes = np.unique(y)
        acc = np.array([[f[y == c].mean() for c in classes] for f in per_seed]) * 100
        w = np.array([(y == c).mean() for c in classes])
        share, var = class_table(acc, w)
        top = np.argsort(-share)[:3]
        rest = np.setdiff1d(np.arange(len(classes)), top)
        rest_std = float(np.std(acc[:, rest] @ (w[rest] / w[rest].sum()), ddof=1))
        out.append({"method": method, "target": target, "seeds": len(per_seed),
                    "std": var ** 0.5, "top": [(int(classes[c]), share[c],
                                                acc[:, c].min(), acc[:, c].max()) for c in top],
                    "top_share": float(share[top].sum()), "rest_std": rest_std})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--metric", default="worst", help="a per-example flag row (default worst)")
    ap.add_argument("--target", type=float, default=None, help="only this target sparsity")
    args = ap.parse_args()
    df = pd.read_csv(args.csv, keep_default_na=False)
    df = df[df["status"] == "ok"]
    if args.target is not None:
        df = df[np.isclose(df["target_sparsity"].astype(float), args.target)]
    rows = cell_rows(df, args.csv.parent, args.metric)
    print(f"| method | target | seeds | seed std of {args.metric} (points) | 3 classes with the "
          "largest share of the seed variance: class (share, per-seed range %) | their share "
          "| seed std without them |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for r in rows:
        top = "; ".join(f"{c} ({s:.0%}, {lo:.0f}-{hi:.0f})" for c, s, lo, hi in r["top"])
        print(f"| {r['method']} | {r['target']} | {r['seeds']} | {r['std']:.1f} | {top} "
              f"| {r['top_share']:.0%} | {r['rest_std']:.1f} |")


if __name__ == "__main__":
    main()
