"""Training-step throughput and size of prunekit models on the CPU.

Measures forward+backward+SGD-step images/s (median and best of the timed iterations, after
warm-up) at a
given batch size and input shape, plus MACs and parameters from
``torch_pruning.utils.count_ops_and_params`` (which also counts BN/ReLU/pooling ops).

Usage::

    python benchmarks/perf/model_speed.py                       # small models, 1x28x28, batch 128
    python benchmarks/perf/model_speed.py --models vgg16 resnet18 --shape 3 32 32 --iters 5
    python benchmarks/perf/model_speed.py --sizes-only --shape 3 32 32 --models all

Prints a Markdown table (results go to docs/data-and-models.md by hand, with the machine).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch_pruning as tp
from torch import nn

import prunekit

SMALL = ["vgg-small", "resnet-small"]


def throughput(model: nn.Module, shape: tuple[int, ...], batch: int, iters: int,
               warmup: int) -> tuple[float, float]:
    """(median, best) images/s of one SGD training step (forward, cross-entropy, backward,
    step); on a shared machine the best iteration is the least disturbed one."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times), batch / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=SMALL, help="names, or 'all'")
    ap.add_argument("--shape", nargs=3, type=int, default=[1, 28, 28], metavar=("C", "H", "W"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--sizes-only", action="store_true", help="MACs/params only, no timing")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = prunekit.MODELS.names() if args.models == ["all"] else args.models
    shape = tuple(args.shape)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, input {'x'.join(map(str, shape))}, "
          f"batch {args.batch}, width {args.width}")
    print("| model | MACs (M) | params (M) |"
          + ("" if args.sizes_only else " train img/s (median) | (best) |"))
    print("|---|---:|---:|" + ("" if args.sizes_only else "---:|---:|"))
    for name in names:
        torch.manual_seed(0)
        model = prunekit.MODELS.build(name, num_classes=10, in_channels=shape[0],
                                      width=args.width)
        macs, params = tp.utils.count_ops_and_params(model.eval(), torch.rand(1, *shape))
        row = f"| {name} | {macs / 1e6:.2f} | {params / 1e6:.3f} |"
        if not args.sizes_only:
            med, best = throughput(model, shape, args.batch, args.iters, args.warmup)
            row += f" {med:.0f} | {best:.0f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
