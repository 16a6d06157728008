"""Achieved-vs-target MACs reduction of the D2BC search (docs/pruning.md).

CPU-scale: a small model on a Fashion-MNIST subset, a short dense warm-up with cross-entropy,
then the D2BC search (weights + gates, CE + gamma * L_MAC), then finalize. Reports, per target:
the analytic conv+linear MACs reduction at the end of the search (before calibration), after
the optional calibration, and torch-pruning's measured reduction of the compacted model.

    python benchmarks/perf/d2bc_macs_target.py --model vgg-small --targets 0.5 0.9 0.99
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import torch
import torch.nn.functional as F

from prunekit import DATASETS, MODELS, PRUNERS
from prunekit.data import subset
from prunekit.pruning import measure
from prunekit.pruning.hard_prune import finalize_change, probe_inputs, probe_logits


def _value(v: str) -> bool | int | float | str:
    if v in ("True", "False"):
        return v == "True"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vgg-small")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.9, 0.99])
    ap.add_argument("--n-train", type=int, default=4096)
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--search-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cosine", action="store_true", help="cosine-decay the search lr to 0")
    ap.add_argument("--hparams", default="", help="extra d2bc hparams, k=v,k=v")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hp = {}
    for kv in filter(None, args.hparams.split(",")):
        k, v = kv.split("=")
        hp[k] = _value(v)
    ds = subset(DATASETS.build("fashion_mnist", split="train"), args.n_train, seed=args.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, drop_last=True)
    spec = ds.spec
    dense = MODELS.build(args.model, num_classes=spec.num_classes, in_channels=spec.input_shape[0],
                         mean=spec.mean, std=spec.std)
    opt = torch.optim.SGD(dense.parameters(), lr=0.05, momentum=0.9, weight_decay=2e-4)
    dense.train()
    for _ in range(args.warmup_epochs):
        for x, y in loader:
            opt.zero_grad(); F.cross_entropy(dense(x), y).backward(); opt.step()
    x0 = next(iter(loader))[0][:2]
    print(f"| model | target | search (analytic) | final (analytic) | measured (torch-pruning) | "
          f"calibrated | train acc (last 20 steps) | s | finalize agreement |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in args.targets:
        model = copy.deepcopy(dense)
        pr = PRUNERS.build("d2bc", sparsity=t, **hp)
        pr.attach(model, x0)
        opt = torch.optim.SGD(pr.param_groups(model), lr=args.lr, momentum=0.9, weight_decay=2e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / args.search_steps)) if args.cosine
            else 1.0)
        step, accs, t0 = 0, [], time.time()
        while step < args.search_steps:
            for x, y in loader:
                out = model(x)
                loss = F.cross_entropy(out, y) + pr.penalty()
                opt.zero_grad(); loss.backward(); opt.step(); sched.step(); pr.on_step_end(step)
                accs = (accs + [float((out.argmax(1) == y).float().mean())])[-20:]
                step += 1
                if step >= args.search_steps:
                    break
        probe = probe_inputs(ds, torch.device("cpu"))
        before = probe_logits(model, probe)
        final = pr.finalize(model)
        agree = finalize_change(before, probe_logits(final, probe))["finalize_agreement"]
        m = measure(final, x0, dense=dense)
        c = pr.calibration
        print(f"| {args.model} | {t:.2f} | {c['search_reduction']:.4f} | {c['final_reduction']:.4f} "
              f"| {m.macs_reduction:.4f} | {c['calibrated']} | {sum(accs)/len(accs):.3f} "
              f"| {time.time()-t0:.0f} | {agree:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
