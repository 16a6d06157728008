"""Cost of one D2BC search step vs one plain adversarial training step (docs/pruning.md).

Same model, same loss (an adversarial loss from prunekit.LOSSES, default TRADES with few inner
steps), same batch. The D2BC step adds the gate hooks, the MAC penalty and the gate clamp.
Measurements are interleaved (plain, d2bc, plain, d2bc, ...) and the medians reported, because
the CPU is shared with other jobs.

    python benchmarks/perf/d2bc_step_cost.py --model vgg-small --loss trades --steps 3
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from prunekit import LOSSES, MODELS, PRUNERS


def _timed(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vgg-small")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--shape", type=int, nargs=3, default=[1, 28, 28])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--loss", default="trades")
    ap.add_argument("--steps", type=int, default=3, help="inner attack steps")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n", type=int, default=3, help="steps per timing")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = args.shape[0]
    base = MODELS.build(args.model, num_classes=10, in_channels=c, width=args.width)
    x = torch.rand(args.batch, *args.shape)
    y = torch.randint(0, 10, (args.batch,))
    loss_fn = LOSSES.build(args.loss, eps=0.1, steps=args.steps)

    plain = copy.deepcopy(base).train()
    opt_p = torch.optim.SGD(plain.parameters(), lr=1e-3, momentum=0.9, weight_decay=2e-4)
    gated = copy.deepcopy(base).train()
    pruner = PRUNERS.build("d2bc", sparsity=0.9)
    pruner.attach(gated, x[:2])
    opt_g = torch.optim.SGD(pruner.param_groups(gated), lr=1e-3, momentum=0.9,
                            weight_decay=2e-4)
    counter = [0]

    def plain_step() -> None:
        loss, _ = loss_fn(plain, x, y)
        opt_p.zero_grad(set_to_none=True)
        loss.backward()
        opt_p.step()

    def d2bc_step() -> None:
        loss, _ = loss_fn(gated, x, y)
        loss = loss + pruner.penalty()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        pruner.on_step_end(counter[0])
        counter[0] += 1

    plain_step(); d2bc_step()  # warm-up
    tp, td = [], []
    for _ in range(args.repeats):
        tp.append(_timed(plain_step, args.n))
        td.append(_timed(d2bc_step, args.n))
    mp, md = statistics.median(tp), statistics.median(td)
    ratios = [d / p for p, d in zip(tp, td)]
    print(f"model={args.model} width={args.width} batch={args.batch} loss={args.loss}"
          f"(steps={args.steps}) threads={args.threads}")
    print(f"plain step median {mp*1e3:.1f} ms, d2bc step median {md*1e3:.1f} ms, "
          f"ratio of medians {md/mp:.3f}, median of paired ratios {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
