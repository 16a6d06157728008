"""Robust accuracy per CPU-hour of the training objectives in a fast-AT grid (issue 21;
docs/training.md, "Fast adversarial training").

Reads a finished ``results.csv`` of ``benchmarks/grids/fast-at-*.yaml`` (dense runs, pretraining
only, one row per loss x epochs x seed) and prints one Markdown row per (loss, epochs): measured
passes per training example, mean ``train_cpu_s``, clean and worst-case accuracy (mean over the
seeds; the seeds' own values in brackets), worst-case points per CPU-hour, and the paired
difference in worst-case accuracy against the reference loss (default ``pgd_at``): the mean over
seeds of the per-example differences on the same test images, a paired bootstrap interval and
the example-level sign-flip p-value (prunekit.bench.stats). With fewer than 3 seeds these speak
about the trained models on these examples, not about the objectives in general (seed-level
tests need more seeds; the script says so).

    python benchmarks/perf/fast_at_table.py benchmarks/results/fast-at-fmnist/results.csv
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from prunekit.bench.examples import flag_row, load_per_example, same_examples
from prunekit.bench.stats import paired_bootstrap, sign_flip_test


def _epochs(cell: str) -> int:
    return int(json.loads(cell)["pretrain"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--reference", default="pgd_at", help="loss the others are paired with")
    args = ap.parse_args()
    d = pd.read_csv(args.csv)
    d = d[d.status == "ok"].copy()
    d["epochs"] = d.train_epochs.map(_epochs)
    ref = d[d.loss == args.reference]
    if ref.empty:
        raise SystemExit(f"no {args.reference!r} rows in {args.csv}; losses: "
                         f"{', '.join(sorted(d.loss.unique()))}")
    ref_ex = {int(r.seed): load_per_example(args.csv.parent, r.examples, r.run_id)
              for r in ref.itertuples()}
    print("| loss | epochs | passes / example | train CPU-s | clean % | worst % | worst points "
          f"per CPU-hour | worst vs {args.reference} (points) [95 % paired bootstrap] | "
          "sign-flip p |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (loss, epochs), g in d.groupby(["loss", "epochs"], sort=False):
        g = g.sort_values("seed")
        cpu = g.train_cpu_s.mean()
        worst = 100 * g.worst_acc.mean()
        passes = g.train_passes.mean()
        per_ex = passes / _train_size(args.csv.parent, g.iloc[0].run_id)
        seeds = ", ".join(f"{100 * w:.1f}" for w in g.worst_acc)
        cell = "--"
        p = "--"
        if loss != args.reference:
            a, b = [], []
            for r in g.itertuples():
                ex, rx = load_per_example(args.csv.parent, r.examples, r.run_id), \
                    ref_ex.get(int(r.seed))
                if same_examples(ex, rx):
                    a.append(flag_row(ex, "worst"))
                    b.append(flag_row(rx, "worst"))
            if a:
                iv = paired_bootstrap(a, b)
                cell = f"{iv.mean:+.1f} [{iv.lo:+.1f}, {iv.hi:+.1f}]"
                p = f"{sign_flip_test(a, b):.2g}"
        print(f"| `{loss}` | {epochs} | {per_ex:.1f} | {cpu:.0f} | {100 * g.clean_acc.mean():.1f} "
              f"| {worst:.1f} ({seeds}) | {worst / (cpu / 3600):,.0f} | {cell} | {p} |")
    n_seeds = d.groupby(["loss", "epochs"]).size().max()
    print(f"\n{len(d)} runs; {n_seeds} seed(s) per point; n_eval {int(d.n_eval.iloc[0])}. "
          + ("Fewer than 3 seeds: the intervals and p-values are over test examples of these "
             "trained models (seed pairs matched), not over training seeds."
             if n_seeds < 3 else ""))


def _train_size(out_dir: Path, run_id: str) -> int:
    """Training examples of a run (``data.train_subset`` of its ``runs/<id>/run.json``)."""
    cfg = json.loads((out_dir / "runs" / run_id / "run.json").read_text())["config"]
    return int(cfg["data"]["train_subset"])


if __name__ == "__main__":
    main()
