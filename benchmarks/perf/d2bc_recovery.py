"""Issue 10 acceptance: do D2BC's closed channels come back, and does D2BC beat random channels?

Runs the demo recipe (benchmarks/grids/demo.yaml: vgg-small x0.5, Fashion-MNIST 4k images,
TRADES 3 steps, pretrain 4 / prune 1 / fine-tune 1 epochs, mask after every conv) at one MACs
target for several seeds, for ``d2bc`` and the ``random-channel`` control (same target, same
stem setting, same training budget: its prune epoch trains the masked network), evaluated with
``autoattack-fast`` (official APGD-CE + APGD-T) on the demo's 200 test images. Per D2BC run it
reads the gates before calibration from the prune checkpoint and reports:

* channels closed at init / re-opened / closed during the search (``D2BC.summary()``);
* Spearman rank correlation of the gates at the end of the search vs their U[0, 1] init, and the
  fraction of channels whose open/closed state is the same as at init;

then the AA-fast accuracy mean +- std over seeds per method and the measured MACs reduction.

    nice -n 10 python benchmarks/perf/d2bc_recovery.py --out runs/d2bc_recovery --threads 1
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path

import torch

from prunekit import checkpoint as ckpt
from prunekit.bench import ResultsStore, run_grid
from prunekit.config import load_yaml

REPO = Path(__file__).resolve().parents[2]


def build_grid(seeds: list[int], sparsity: float, attacks: list[str],
               random_allocations: list[str]) -> dict:
    demo = load_yaml(str(REPO / "benchmarks" / "grids" / "demo.yaml"))
    base = copy.deepcopy(demo["base"])
    base["eval"]["attacks"] = attacks
    stem = base.get("d2bc", {}).get("include_stem", False)
    base["random-channel"] = {"include_stem": stem}
    include = [{"method": "random-channel", "sparsity": sparsity, "seed": s,
                "random-channel.allocation": a}
               for s in seeds for a in random_allocations if a != "uniform"]
    return {"name": "d2bc-recovery", "base": base,
            "axes": {"seed": seeds, "method": ["d2bc", "random-channel"],
                     "sparsity": [sparsity]},
            "include": include}


def gate_stats(workdir: Path) -> dict:
    """Recovery counts (run.json) and rank statistics of the gates vs their init (prune ckpt)."""
    from scipy.stats import spearmanr

    info = json.loads((workdir / "run.json").read_text())["pruner"]
    out = dict(info.get("summary", {}))
    state = ckpt.load(workdir / "prune" / "ckpt.pt")["pruner"]
    m = torch.cat([t.flatten() for t in state["m"]]).float()
    m0 = torch.cat([t.flatten() for t in state["m0"]]).float()
    thres = float(info["hparams"].get("thres", 0.5))
    out["spearman_init"] = float(spearmanr(m0.numpy(), m.numpy()).statistic)
    out["same_state_as_init"] = float(((m0 > thres) == (m > thres)).float().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/d2bc_recovery")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--attacks", nargs="+", default=["autoattack-fast"])
    ap.add_argument("--random-allocations", nargs="+", default=["uniform", "global"],
                    help="random-channel allocations to run (uniform is the default pruner)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    grid = build_grid(args.seeds, args.sparsity, args.attacks, args.random_allocations)
    out = Path(args.out)
    run_grid(grid, out, progress=print)

    rows = [r for r in ResultsStore(out / "results.csv").rows() if r["status"] == "ok"]
    by: dict[str, list[dict]] = {}
    print("\n| run | seed | MACs red. | AA-fast | closed at init | re-opened | closed in search "
          "| Spearman(init, end) | same state as init |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["method"], r["variant"], int(r["seed"]))):
        label = r["method"] + (f" ({r['variant']})" if r["variant"] else "")
        by.setdefault(label, []).append(r)
        extra = ["", "", "", "", ""]
        if r["method"] == "d2bc":
            g = gate_stats(out / "runs" / r["run_id"])
            extra = [str(g.get("closed_at_init", "")), str(g.get("reopened", "")),
                     str(g.get("closed_in_search", "")), f"{g['spearman_init']:.3f}",
                     f"{g['same_state_as_init']:.3f}"]
        print(f"| {label} | {r['seed']} | {float(r['macs_reduction']):.4f} | "
              f"{100 * float(r['aa_acc']):.1f} | " + " | ".join(extra) + " |")
    print("\n| method | runs | AA-fast mean +- std (%) | clean mean (%) | MACs red. mean |")
    print("|---|---|---|---|---|")
    for label, rs in by.items():
        aa = [100 * float(r["aa_acc"]) for r in rs]
        clean = [100 * float(r["clean_acc"]) for r in rs]
        sd = statistics.stdev(aa) if len(aa) > 1 else 0.0
        red = statistics.mean(float(r["macs_reduction"]) for r in rs)
        print(f"| {label} | {len(rs)} | {statistics.mean(aa):.1f} +- {sd:.1f} | "
              f"{statistics.mean(clean):.1f} | {red:.4f} |")


if __name__ == "__main__":
    main()
