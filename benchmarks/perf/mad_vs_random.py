"""Does MAD's adversarial saliency select better weights than chance? One-shot pruning of one
adversarially pretrained model (a grid's recipe, pretraining cached and shared) by ``mad``,
global ``magnitude`` and ``random-weight`` (global) at the same sparsity, evaluated right after
the prune (``--finetune 0``: the selection alone) or after ``--finetune`` epochs of the grid's
fine-tuning, on the same test examples, with the paired difference to the random control
(McNemar, exact). One pretrained model: the unit is the test example, not the seed.

    nice -n 10 python benchmarks/perf/mad_vs_random.py benchmarks/grids/demo.yaml \
        --sparsity 0.5 0.8 --calib 16 --n 500 --out /tmp/madcheck --finetune 0 --threads 1
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from scipy.stats import binomtest

from prunekit.bench import expand, load_grid
from prunekit.bench.grid import resolve_data_root
from prunekit.config import RunConfig
from prunekit.eval import RobustnessEvaluator
from prunekit.train import run_pipeline
from prunekit.train.data import build_test_set


METHODS = [("mad", "mad", {}), ("magnitude (global)", "magnitude", {"scope": "global"}),
           ("random", "random-weight", {"scope": "global"})]


def config(grid_path: str, method: str, sparsity: float, extra: dict,
           finetune: int) -> RunConfig:
    grid = load_grid(grid_path)
    cfg = expand(grid)[0].config
    cfg.data = dataclasses.replace(cfg.data, root=resolve_data_root(cfg.data.root, grid.path))
    d = cfg.to_dict()
    d.update(method=method, sparsity=sparsity)
    d["prune"] = {**d["prune"], "epochs": 0}
    d["finetune"] = {**d["finetune"], "epochs": finetune}
    d[method] = extra
    return RunConfig.from_dict(d)


def mcnemar(a: torch.Tensor, b: torch.Tensor) -> float:
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b).pvalue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.8])
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--attack", default="pgd-20-1")
    ap.add_argument("--out", default="/tmp/madcheck")
    ap.add_argument("--finetune", type=int, default=0, help="fine-tune epochs after the prune")
    ap.add_argument("--largest", action="store_true",
                    help="also run mad with largest=True (prune the highest saliency)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    print(f"| sparsity | selection | clean | {args.attack} | vs random (points) | McNemar p |")
    print("|---|---|---|---|---|---|")
    for s in args.sparsity:
        models, res = {}, None
        methods = METHODS + ([("mad largest=True", "mad", {"largest": True})]
                             if args.largest else [])
        for label, method, extra in methods:
            extra = {**extra, "calib_batches": args.calib} if method == "mad" else extra
            cfg = config(args.grid, method, s, extra, args.finetune)
            tag = "-largest" if extra.get("largest") else ""
            res = run_pipeline(cfg, out / f"{method}{tag}-{s}-ft{args.finetune}",
                               cache_dir=out / "cache", progress=False)
            models[label] = res.model
            print(f"<!-- {label} at {s}: {res.summary} -->")
        mad = cfg
        test = build_test_set(mad)
        ev = RobustnessEvaluator(res.cfg.eval.eps or res.cfg.loss.eps, attacks=[args.attack],
                                 n_examples=args.n, device="cpu")
        results = {k: ev.evaluate(m, test) for k, m in models.items()}
        base = results["random"]
        bflags = torch.as_tensor(base.flags[args.attack])
        for k, r in results.items():
            flags = torch.as_tensor(r.flags[args.attack])
            diff = 100 * (float(flags.float().mean()) - float(bflags.float().mean()))
            p = "" if k == "random" else f"{mcnemar(flags, bflags):.3g}"
            d = "" if k == "random" else f"{diff:+.1f}"
            print(f"| {s:g} | {k} | {100 * r.clean_acc:.1f} | "
                  f"{100 * r.robust_acc[args.attack]:.1f} | {d} | {p} |")


if __name__ == "__main__":
    main()
