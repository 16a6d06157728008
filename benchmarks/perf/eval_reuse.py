"""Evaluation time with and without attack reuse (APGD-CE read from AutoAttack's first stage).

With ``apgd-ce`` and ``autoattack-fast`` (or ``autoattack``) in one evaluation, the evaluator
runs APGD-CE once, as AutoAttack's first stage, instead of once alone and once inside the
ensemble (``RobustnessEvaluator(reuse=True)``, the default). This script evaluates every final
model of a finished grid twice -- ``reuse=True`` and ``reuse=False`` -- with the grid's own eval
settings (default: the demo's ``pgd-50-10 apgd-ce autoattack-fast`` on 200 test images), checks
that every per-example flag row is identical, and reports wall and CPU seconds. The two
evaluations of a model run back to back, in alternating order from model to model, so they see
similar machine load.

Usage (after ``prunekit bench benchmarks/grids/demo.yaml --out runs/demo``)::

    nice -n 10 python benchmarks/perf/eval_reuse.py runs/demo --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from prunekit.checkpoint import load_model
from prunekit.eval import RobustnessEvaluator
from prunekit.registry import DATASETS

DEMO_ATTACKS = ("pgd-50-10", "apgd-ce", "autoattack-fast")


def timed(ev: RobustnessEvaluator, model: torch.nn.Module, data) -> tuple[object, float, float]:
    w, c = time.perf_counter(), time.process_time()
    res = ev.evaluate(model, data)
    return res, time.perf_counter() - w, time.process_time() - c


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a finished grid's --out folder (runs/*/model.pt)")
    p.add_argument("--attacks", nargs="+", default=list(DEMO_ATTACKS))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"load before: {os.getloadavg()}")
    rows = []
    for k, path in enumerate(sorted(args.out.glob("runs/*/model.pt"))):
        model = load_model(path).eval()
        meta = getattr(model, "prunekit_meta", {}) or {}
        data = DATASETS.build(meta["dataset"], split="test")
        kw = dict(attacks=args.attacks, n_examples=args.n, batch_size=args.batch_size, seed=0)
        order = (True, False) if k % 2 == 0 else (False, True)
        out = {}
        for reuse in order:
            out[reuse] = timed(RobustnessEvaluator(float(meta["eps"]), reuse=reuse, **kw),
                               model, data)
        (on, w_on, c_on), (off, w_off, c_off) = out[True], out[False]
        same = all(torch.equal(on.flags[n], off.flags[n]) for n in ("clean", *on.attacks,
                                                                    "worst"))
        rows.append({"run": path.parent.name, "reused": on.reused, "identical_flags": same,
                     "wall_reuse": w_on, "wall_no_reuse": w_off, "cpu_reuse": c_on,
                     "cpu_no_reuse": c_off, "apgd_ce_alone_s": off.seconds.get("apgd-ce"),
                     "acc": {n: on.robust_acc[n] for n in on.attacks}})
        print(f"{path.parent.name}: reuse {w_on:.1f} s wall / {c_on:.1f} s CPU, no reuse "
              f"{w_off:.1f} / {c_off:.1f}, identical flags: {same}, reused {on.reused}")
    tot = {k: sum(r[k] for r in rows) for k in ("wall_reuse", "wall_no_reuse", "cpu_reuse",
                                                "cpu_no_reuse")}
    print(f"total: reuse {tot['wall_reuse']:.1f} s wall / {tot['cpu_reuse']:.1f} s CPU; "
          f"no reuse {tot['wall_no_reuse']:.1f} / {tot['cpu_no_reuse']:.1f}; CPU ratio "
          f"{tot['cpu_reuse'] / tot['cpu_no_reuse']:.3f}, saved "
          f"{tot['cpu_no_reuse'] - tot['cpu_reuse']:.1f} CPU-s")
    print(f"load after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "total": tot}, indent=2))
    return 0 if all(r["identical_flags"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
