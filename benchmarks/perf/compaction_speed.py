"""CPU inference speed-up of a compacted model at ~90 % MACs reduction (docs/pruning.md).

The kept channels come from D2BC's calibration (random gates ranked, the kept set fitted to the
MAC budget), so the architecture is what a D2BC run of the same target produces. Dense and
compacted models are timed interleaved (repeats, medians) in eval mode under
``torch.inference_mode``; optional channels_last.

    python benchmarks/perf/compaction_speed.py --model vgg16 --width 0.5 --batch 32
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from prunekit import MODELS, PRUNERS
from prunekit.pruning import measure


def _timed(model, x, n: int) -> float:
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(n):
            model(x)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--round-to", type=int, default=8, help="kept widths multiple of this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = MODELS.build(args.model, num_classes=10, in_channels=3, width=args.width).eval()
    x = torch.rand(args.batch, 3, 32, 32)
    model = copy.deepcopy(dense)
    pruner = PRUNERS.build("d2bc", sparsity=args.target, calibrate_tol=0.0, round_to=args.round_to)
    pruner.attach(model, x[:2])
    small = pruner.finalize(model).eval()
    m = measure(small, x[:1], dense=dense)
    if args.channels_last:
        dense = dense.to(memory_format=torch.channels_last)
        small = small.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    _timed(dense, x, 1); _timed(small, x, 1)
    td, ts = [], []
    for _ in range(args.repeats):
        td.append(_timed(dense, x, args.n))
        ts.append(_timed(small, x, args.n))
    md, ms = statistics.median(td), statistics.median(ts)
    macs_ratio = m.dense_macs / m.macs
    speedup = md / ms
    print(f"model={args.model} width={args.width} batch={args.batch} threads={args.threads} "
          f"channels_last={args.channels_last} round_to={args.round_to}")
    print(f"MACs reduction {m.macs_reduction:.4f} (MACs ratio {macs_ratio:.2f}x); dense "
          f"{md*1e3:.1f} ms, compacted {ms*1e3:.1f} ms, speed-up {speedup:.2f}x = "
          f"{speedup/macs_ratio:.2f} of the MACs ratio")


if __name__ == "__main__":
    main()
