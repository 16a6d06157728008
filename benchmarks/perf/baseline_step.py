"""Cost of one prune-stage training step of the baselines vs a plain adversarial step.

For each method the step is what ``prunekit.train.fit`` does in the prune stage: adversarial
loss (inner attack + outer loss) + ``pruner.penalty()``, backward, SGD step,
``pruner.on_step_end``. "plain" is the same step on the dense model with every parameter
trained and no pruner. Methods are interleaved inside each repeat (the CPU is shared: load
drifts), and the median step time per method is reported with its ratio to plain.

    python benchmarks/perf/baseline_step.py --model vgg-small --repeats 15
    python benchmarks/perf/baseline_step.py --model resnet-small --methods hydra admm
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

import torch

import prunekit
from prunekit import LOSSES, MODELS, PRUNERS

SETTINGS = {
    "plain": None,
    "hydra": {"sparsity": 0.9},
    "hydra-channel": {"sparsity": 0.5},
    "admm": {"sparsity": 0.9, "admm_interval": 1, "interval_unit": "epoch"},
    "admm-filter": {"sparsity": 0.5, "admm_interval": 1, "interval_unit": "epoch"},
    # Twin-Rep: the re-parametrised forward costs the same before and after its one-shot prune
    "twin-rep": {"sparsity": 0.9},
    "twin-rep-channel": {"sparsity": 0.5},
}


def make_step(method: str, base: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss):
    model = copy.deepcopy(base).train()
    pruner = None
    if method == "plain":
        params = [{"params": list(model.parameters())}]
    else:
        pruner = PRUNERS.build(method, **SETTINGS[method])
        pruner.attach(model, x[:2])
        params = pruner.param_groups(model)
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=2e-4)
    counter = [0]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        value, _ = loss(model, x, y)
        if pruner is not None:
            value = value + pruner.penalty()
        value.backward()
        opt.step()
        if pruner is not None:
            pruner.on_step_end(counter[0])
        counter[0] += 1

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg-small")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--input", default="3x32x32", help="CxHxW")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--loss", default="trades")
    ap.add_argument("--attack-steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=[m for m in SETTINGS if m != "plain"])
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c, h, w = (int(v) for v in args.input.split("x"))
    base = MODELS.build(args.model, num_classes=10, in_channels=c, width=args.width)
    x = torch.rand(args.batch, c, h, w)
    y = torch.randint(0, 10, (args.batch,))
    loss = LOSSES.build(args.loss, eps=8 / 255, steps=args.attack_steps)
    methods = ["plain", *args.methods]
    steps = {m: make_step(m, base, x, y, loss) for m in methods}
    for m in methods:
        for _ in range(args.warmup):
            steps[m]()
    times: dict[str, list[float]] = {m: [] for m in methods}
    load0 = os.getloadavg()[0]
    for r in range(args.repeats):
        order = methods if r % 2 == 0 else methods[::-1]   # interleave, alternate the order
        for m in order:
            t0 = time.perf_counter()
            steps[m]()
            times[m].append(time.perf_counter() - t0)
    load1 = os.getloadavg()[0]
    plain = statistics.median(times["plain"])
    print(f"# {args.model} width {args.width}, input {args.input}, batch {args.batch}, "
          f"{args.loss} with {args.attack_steps} attack steps; {args.repeats} interleaved "
          f"repeats, {args.threads} threads; torch {torch.__version__}, prunekit "
          f"{prunekit.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {load0:.1f} -> {load1:.1f}")
    print(f"{'method':<14} {'median s/step':>14} {'IQR':>15} {'ratio':>7}")
    for m in methods:
        med = statistics.median(times[m])
        q = statistics.quantiles(times[m], n=4)
        print(f"{m:<14} {med:14.4f} {q[0]:7.4f}-{q[2]:<7.4f} {med / plain:7.3f}")


if __name__ == "__main__":
    main()
