"""Inference latency of channel-pruned, physically compacted models vs measured MACs.

For the dense model and every registered channel method (granularity ``channel``) at each
sparsity, runs the real pipeline briefly on synthetic data (1 pretraining epoch shared through
the cache, 1 prune epoch, no fine-tuning: only the resulting shapes matter for latency), then
times the final model in PyTorch eager and in onnxruntime (``prunekit export onnx`` path:
``prunekit.export.onnx_export.to_onnx``, checked against PyTorch first) at 1 and 2 threads and
batch 1 and 64. Each figure is the median of ``--repeats`` timed calls after warm-up (medians
resist the other processes of a shared machine; CPU time is not used since onnxruntime's
threads are not the caller's).

Usage::

    nice -n 10 python benchmarks/perf/latency.py --out /tmp/latency            # table to stdout
    python benchmarks/perf/latency.py --model resnet-small --shape 1 28 28 --sparsities 0.5 0.75 0.9

Prints a Markdown table (put in docs/deployment.md by hand with the command and ``uptime``).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from prunekit.config import RunConfig
from prunekit.export.onnx_export import check_onnx, ort_session, to_onnx
from prunekit.pruning import measure
from prunekit.registry import PRUNERS
from prunekit.train import run_pipeline


def median_ms(call: Callable[[], Any], repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def build(method: str, sparsity: float, args: argparse.Namespace, work: Path) -> Any:
    cfg = RunConfig.from_dict({
        "data": {"dataset": "synthetic", "input_shape": list(args.shape), "size": 256,
                 "batch_size": 64},
        "model": {"name": args.model}, "loss": {"name": "pgd_at", "steps": 1},
        "pretrain": {"epochs": 1}, "prune": {"epochs": 1}, "finetune": {"epochs": 0},
        "method": method, "sparsity": sparsity, "seed": 0})
    return run_pipeline(cfg, work / f"{method}-{sparsity}", cache_dir=work / "cache",
                        device="cpu", progress=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet-small")
    p.add_argument("--shape", type=int, nargs=3, default=(1, 28, 28))
    p.add_argument("--sparsities", type=float, nargs="+", default=(0.5, 0.75, 0.9))
    p.add_argument("--methods", nargs="+", default=None,
                   help="default: every registered channel method")
    p.add_argument("--repeats", type=int, default=100, help="timed calls per figure (batch 1; "
                                                            "batch 64 uses a quarter)")
    p.add_argument("--out", default="/tmp/prunekit-latency")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.out)
    methods = args.methods or [n for n in PRUNERS.names()
                               if getattr(PRUNERS.get(n), "granularity", "") == "channel"]
    points = [("dense", 0.0)] + [(m, s) for m in methods for s in args.sparsities]
    rows = []
    for method, sp in points:
        res = build(method, sp, args, work)
        model = res.model.cpu().eval()
        x1 = torch.rand(1, *args.shape)
        meas = measure(model, x1)
        onnx_path = to_onnx(model, work / f"{method}-{sp}.onnx", tuple(args.shape))
        check = check_onnx(model, onnx_path, torch.rand(256, *args.shape))
        cells = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sess = ort_session(onnx_path, threads=threads)
            for batch in (1, 64):
                x = torch.rand(batch, *args.shape)
                xn = x.numpy().astype(np.float32)
                reps = args.repeats if batch == 1 else max(10, args.repeats // 4)
                with torch.no_grad():
                    eager = median_ms(lambda: model(x), reps)
                ort = median_ms(lambda: sess.run(["logits"], {"input": xn}), reps)
                cells += [eager, ort]
        rows.append((method, sp, meas.macs, meas.params, check.max_abs_diff, cells))
        print(f"row | {method} | {sp:.2f} | {meas.macs / 1e6:.2f} M | {meas.params / 1e3:.1f} k | "
              f"{check.max_abs_diff:.1e} | " + " | ".join(f"{c:.3f}" for c in cells) + " |  "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    head = ("| method | sparsity | MACs | params | ONNX max abs diff | "
            + " | ".join(f"{rt} {t}t b{b} ms" for t in (1, 2) for b in (1, 64)
                         for rt in ("eager", "ort")) + " |")
    print(f"\nmodel {args.model}, input {tuple(args.shape)}, torch {torch.__version__}, "
          f"load {os.getloadavg()}")
    print(head)
    print("|" + "---|" * (5 + 8))
    for method, sp, macs, params, diff, cells in rows:
        print(f"| {method} | {sp:.2f} | {macs / 1e6:.2f} M | {params / 1e3:.1f} k | {diff:.1e} | "
              + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
