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
    ap.add_argument("--include-stem", action="store_true", help="prune the stem group too")
    ap.add_argument("--fuse", action="store_true",
                    help="fold eval-mode BN into the convs (torch.fx) in both models")
    ap.add_argument("--jit", action="store_true",
                    help="torch.jit.trace + freeze + optimize_for_inference (oneDNN fusions) "
                         "for both models")
    ap.add_argument("--round-to", type=int, default=8, help="kept widths multiple of this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dense = MODELS.build(args.model, num_classes=10, in_channels=3, width=args.width).eval()
    x = torch.rand(args.batch, 3, 32, 32)
    model = copy.deepcopy(dense)
    pruner = PRUNERS.build("d2bc", sparsity=args.target, calibrate_tol=0.0, round_to=args.round_to,
                           include_stem=args.include_stem)
    pruner.attach(model, x[:2])
    small = pruner.finalize(model).eval()
    m = measure(small, x[:1], dense=dense)
    if args.fuse:
        from torch.fx.experimental.optimization import fuse

        dense, small = fuse(dense), fuse(small)
    if args.channels_last:
        dense = dense.to(memory_format=torch.channels_last)
        small = small.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if args.jit:
        with torch.no_grad():
            dense, small = (torch.jit.optimize_for_inference(torch.jit.freeze(
                torch.jit.trace(mdl, x[:1]))) for mdl in (dense, small))
    for _ in range(2):
        _timed(dense, x, 1); _timed(small, x, 1)
    td, ts = [], []
    for _ in range(args.repeats):
        td.append(_timed(dense, x, args.n))
        ts.append(_timed(small, x, args.n))
    md, ms = statistics.median(td), statistics.median(ts)
    macs_ratio = m.dense_macs / m.macs
    speedup = md / ms
    paired = statistics.median([d / s_ for d, s_ in zip(td, ts)])
    print(f"model={args.model} width={args.width} batch={args.batch} threads={args.threads} "
          f"channels_last={args.channels_last} round_to={args.round_to} "
          f"include_stem={args.include_stem} fuse={args.fuse} jit={args.jit}")
    print(f"MACs reduction {m.macs_reduction:.4f} (MACs ratio {macs_ratio:.2f}x); dense "
          f"{md*1e3:.1f} ms, compacted {ms*1e3:.1f} ms, speed-up {speedup:.2f}x = "
          f"{speedup/macs_ratio:.2f} of the MACs ratio; median paired speed-up {paired:.2f}x = "
          f"{paired/macs_ratio:.2f} of the MACs ratio")


if __name__ == "__main__":
    main()
