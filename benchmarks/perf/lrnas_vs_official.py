"""CPU time of one LRNAS contribution-scoring permutation: prunekit beside the official code
(fyqsama/LRNAS ``ranking.compute_value`` on its ``model_search.Network``), measured side by
side (docs/search.md, "Cost against the official code").

The official code is *not* part of prunekit: pass a checkout of it with ``--official`` (e.g.
``git clone https://github.com/fyqsama/LRNAS``); it is imported from there, unmodified, with
``Tensor.cuda`` made the identity so it runs on the CPU. Both supernets have the same shape
(all 8 ops, ``--C`` channels, ``--layers`` cells, k 4, 3x32x32 inputs -- the official stem
takes 3 channels), eval mode, one random batch of ``--batch`` images, one permutation of the
224 players; the runs are interleaved (official, prunekit with the library pooling kernels,
prunekit with the slice pools) and ``--reps`` times repeated; the figure is the median of the
process CPU times (the machine is shared; ``uptime`` is printed before and after).

    nice -n 10 python benchmarks/perf/lrnas_vs_official.py --official /path/to/LRNAS --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from prunekit.search import pooling
from prunekit.search.scoring import contribution_scores
from prunekit.search.supernet import SearchNetwork


def _official(path: str, C: int, layers: int) -> tuple[object, object, np.ndarray]:
    sys.path.insert(0, path)
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    import model_search  # noqa: E402  (the official module, from --official)
    import ranking  # noqa: E402
    net = model_search.Network(C, 10, layers, torch.nn.CrossEntropyLoss()).eval()
    ops = np.concatenate([[f"{c}_{e}_{i}" for i in range(net.num_ops)]
                          for c in ("normal", "reduce") for e in range(net.num_edges)])
    return net, ranking, ops


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="checkout of fyqsama/LRNAS")
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = [subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()]
    torch.manual_seed(0)
    x, y = torch.rand(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    off_net, ranking, ops = _official(os.path.abspath(args.official), args.C, args.layers)
    own = SearchNetwork(C=args.C, layers=args.layers, num_classes=10, in_channels=3).eval()
    own = own.to(memory_format=torch.channels_last)  # as prunekit's search on the CPU
    slices = pooling._no_grad

    def official() -> None:
        with open(os.devnull, "w") as null:
            out, sys.stdout = sys.stdout, null
            try:
                ranking.compute_value([(x, y)], off_net, ops, 1)
            finally:
                sys.stdout = out

    def prunekit(use_slices: bool) -> None:
        pooling._no_grad = slices if use_slices else (lambda t: False)
        try:
            contribution_scores(own, [(x, y)], 8 / 255, torch.Generator().manual_seed(0))
        finally:
            pooling._no_grad = slices

    runs = {"official": official, "prunekit_kernel_pools": lambda: prunekit(False),
            "prunekit_slice_pools": lambda: prunekit(True)}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.reps):
        for name, fn in runs.items():
            c0 = time.process_time()
            fn()
            cpu[name].append(round(time.process_time() - c0, 2))
    load.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    med = {k: statistics.median(v) for k, v in cpu.items()}
    print(json.dumps({"C": args.C, "layers": args.layers, "batch": args.batch,
                      "threads": args.threads, "cpu_s": cpu, "median_cpu_s": med,
                      "prunekit_slice_vs_official": round(med["prunekit_slice_pools"]
                                                          / med["official"], 3),
                      "prunekit_kernel_vs_official": round(med["prunekit_kernel_pools"]
                                                           / med["official"], 3),
                      "slice_vs_kernel": round(med["prunekit_slice_pools"]
                                               / med["prunekit_kernel_pools"], 3),
                      "load": load}, indent=1))


if __name__ == "__main__":
    main()
