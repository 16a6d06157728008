"""PGD-50-10 with early exit vs the naive loop (every example attacked in every restart).

``PGD.robust_flags(early_exit=True)`` skips clean-misclassified points, drops a point from the
current restart the moment an iterate is misclassified, and attacks only still-robust points in
later restarts. The naive loop (``early_exit=False``) runs all steps of all restarts on every
point. Both count a point broken as soon as any iterate is misclassified, so they measure the
same quantity; the comparison is cost (per-example input-gradient evaluations, ``PGD.grad_evals``,
and wall time) and robust accuracy.

Model: a tiny CNN adversarially trained here (FGSM with random start, Wong et al. 2020) on
Fashion-MNIST to about 50 % PGD accuracy at eps 0.1.

Usage::

    python benchmarks/perf/pgd_early_exit.py --n 1000 --threads 1
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.attacks.pgd import PGD

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def read(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    p = "train" if split == "train" else "t10k"
    with gzip.open(FMNIST / f"{p}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(FMNIST / f"{p}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return torch.tensor(x, dtype=torch.float32) / 255, torch.tensor(y, dtype=torch.long)


def train(eps: float, n: int, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    x, y = read("train", n)
    m = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(),
                      nn.Conv2d(8, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Flatten(),
                      nn.Linear(16 * 7 * 7, 10))
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, 100):
            xb, yb = x[perm[i:i + 100]], y[perm[i:i + 100]]
            d = ((torch.rand_like(xb) * 2 - 1) * eps).requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(m((xb + d).clamp(0, 1)), yb), d)
            xa = (xb + (d + 1.25 * eps * g.sign()).clamp(-eps, eps)).clamp(0, 1).detach()
            opt.zero_grad()
            F.cross_entropy(m(xa), yb).backward()
            opt.step()
    return m.eval()


def run_both(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
             batch: int) -> dict[str, dict[str, float]]:
    """Both loops, interleaved batch by batch (so both see the same CPU load); wall and process
    CPU seconds, gradient evaluations and robust accuracy per loop."""
    out: dict[str, dict[str, float]] = {}
    flags: dict[str, list[torch.Tensor]] = {"early_exit": [], "naive": []}
    pgds = {k: PGD(eps, steps=50, restarts=10, start="uniform") for k in flags}
    wall = {k: 0.0 for k in flags}
    cpu = {k: 0.0 for k in flags}
    for b, i in enumerate(range(0, len(x), batch)):
        for k in flags:
            torch.manual_seed(seed * 100003 + b)
            t0, c0 = time.perf_counter(), time.process_time()
            r, _ = pgds[k].robust_flags(model, x[i:i + batch], y[i:i + batch],
                                        early_exit=(k == "early_exit"))
            wall[k] += time.perf_counter() - t0
            cpu[k] += time.process_time() - c0
            flags[k].append(r)
    for k in flags:
        out[k] = {"seconds": wall[k], "cpu_seconds": cpu[k], "grad_evals": pgds[k].grad_evals,
                  "robust_acc": torch.cat(flags[k]).double().mean().item()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500, help="test examples")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--train-n", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1,
                    help="repeat both loops with other random starts; report means")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = train(args.eps, args.train_n, args.epochs, args.seed)
    x, y = read("test", args.n)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).double().mean().item()
    runs: dict[str, list[dict[str, float]]] = {"early_exit": [], "naive": []}
    for r in range(args.repeats):  # different random starts per repeat
        both = run_both(model, x, y, args.eps, args.seed + 1 + r, args.batch)
        for k in runs:
            runs[k].append(both[k])
    fast, naive = ({k: sum(d[k] for d in v) / len(v) for k in v[0]} for v in runs.values())
    out = {"n": args.n, "eps": args.eps, "threads": args.threads, "repeats": args.repeats,
           "clean_acc": clean, "early_exit": fast, "naive": naive,
           "per_repeat_robust_acc": {k: [d["robust_acc"] for d in v] for k, v in runs.items()},
           "grad_eval_ratio": fast["grad_evals"] / naive["grad_evals"],
           "time_ratio": fast["seconds"] / naive["seconds"],
           "cpu_time_ratio": fast["cpu_seconds"] / naive["cpu_seconds"],
           "robust_acc_diff_points": 100 * (fast["robust_acc"] - naive["robust_acc"])}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
