"""Run this first on a GPU machine: checks what the paper-scale grids need and prints one table.

Checks: CUDA (device, capability, versions); bf16 autocast (native support, a conv agrees with
fp32); channels_last (forward/backward agree with the default format); DDP over NCCL when >= 2
GPUs (2 processes all-reduce, then 2 DDP steps of prunekit's ``fit`` leave identical replicas);
the official AutoAttack (standard) on CUDA through prunekit's evaluator; and the training
throughput (images/s) of one paper-config step -- TRADES-10, batch 128, vgg16 and resnet18 on
32x32 -- in fp32 and with bf16 + channels_last.

Usage::

    python benchmarks/gpu_check.py                 # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --quick   # the same checks on the CPU (gloo)

Exit status: 0 all checks passed, 1 a check failed, 2 no CUDA GPU visible (one line, nothing
checked; ``--device cpu`` runs the CPU variant instead).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

ROWS: list[tuple[str, bool, str]] = []


def check(name: str, fn: Callable[[], str]) -> None:
    """Run one check; a raised exception is a failed row (message kept to one line)."""
    try:
        ROWS.append((name, True, fn()))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a table row
        msg = str(exc).strip().splitlines()
        ROWS.append((name, False, f"{type(exc).__name__}: {msg[0] if msg else ''}"[:160]))


def _model(name: str, width: float, device: torch.device) -> torch.nn.Module:
    import prunekit

    torch.manual_seed(0)
    return prunekit.MODELS.build(name, num_classes=10, in_channels=3, width=width).to(device)


def check_device(device: torch.device) -> str:
    if device.type != "cuda":
        return f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}"
    p = torch.cuda.get_device_properties(device)
    return (f"{torch.cuda.device_count()} x {p.name}, capability {p.major}.{p.minor}, "
            f"{p.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")


def check_bf16(device: torch.device) -> str:
    from prunekit.train.env import bf16_support

    ok, why = bf16_support(device)
    if not ok:
        raise RuntimeError(why)
    w = torch.randn(16, 8, 3, 3, device=device)
    x = torch.rand(4, 8, 16, 16, device=device)
    ref = F.conv2d(x, w)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = F.conv2d(x, w)
    err = float((out.float() - ref).abs().max() / ref.abs().max())
    if out.dtype != torch.bfloat16 or err > 0.02:
        raise RuntimeError(f"autocast gave {out.dtype}, relative error {err:.3g}")
    return f"native bf16; conv under autocast: relative error {err:.1e}"


def check_channels_last(device: torch.device, width: float) -> str:
    ref = _model("resnet18", width, device).train()
    cl = _model("resnet18", width, device).train().to(memory_format=torch.channels_last)
    x = torch.rand(8, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (8,), device=device)
    outs = []
    for m, inp in ((ref, x), (cl, x.contiguous(memory_format=torch.channels_last))):
        out = m(inp)
        F.cross_entropy(out, y).backward()
        outs.append(out.detach())
    g0, g1 = (torch.cat([p.grad.flatten() for p in m.parameters()]) for m in (ref, cl))
    d_out = float((outs[0] - outs[1]).abs().max())
    d_grad = float((g0 - g1).norm() / g0.norm())
    if d_out > 1e-3 or d_grad > 1e-2:
        raise RuntimeError(f"channels_last differs: logits {d_out:.2g}, gradient {d_grad:.2g}")
    return f"resnet18 logits max diff {d_out:.1e}, gradient rel. diff {d_grad:.1e}"


def _ddp_worker(rank: int, world: int, init: str, backend: str, out: str) -> None:
    import torch.distributed as dist

    from prunekit.config import StageConfig
    from prunekit.losses import TRADES
    from prunekit.train import build_loader, dist_env, fit, make_optimizer, make_scheduler

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"file://{init}", rank=rank, world_size=world)
    t = torch.ones(1, device=device) * (rank + 1)
    dist.all_reduce(t)
    model = _model("vgg16", 0.125, device)
    data = torch.utils.data.TensorDataset(torch.rand(64, 3, 32, 32),
                                          torch.randint(0, 10, (64,)))
    st = StageConfig(epochs=1, lr=0.05)
    opt = make_optimizer(list(model.parameters()), st)
    fit(model, TRADES(eps=8 / 255, steps=2), opt, make_scheduler(opt, st),
        build_loader(data, 16, seed=0, dist=dist_env()), 1, device=device, progress=False,
        dist=dist_env())
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        same = max(float((g - gathered[0]).abs().max()) for g in gathered)
        with open(out, "w") as fh:
            fh.write(f"{float(t.item())} {same}")
    dist.destroy_process_group()


def check_ddp(backend: str) -> str:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ddp.txt")
        mp.spawn(_ddp_worker, args=(2, os.path.join(tmp, "init"), backend, out), nprocs=2,
                 join=True)
        total, diff = (float(v) for v in open(out).read().split())
    if total != 3.0 or diff > 1e-5:
        raise RuntimeError(f"all_reduce gave {total} (expected 3), replicas differ by {diff:.2g}")
    return f"{backend}: all_reduce ok; 2 DDP steps of fit, replicas equal (max diff {diff:.1e})"


def check_autoattack(device: torch.device, width: float, n: int) -> str:
    from prunekit.eval import RobustnessEvaluator

    model = _model("vgg16", width, device).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    with torch.no_grad():  # attack points the model gets right, so every attack has work
        y = model(x.to(device)).argmax(1).cpu()
    t0 = time.perf_counter()
    res = RobustnessEvaluator(8 / 255, attacks=("autoattack",), batch_size=n,
                              device=device).evaluate(model, (x, y))
    return (f"standard AutoAttack on {n} images in {time.perf_counter() - t0:.1f} s: clean "
            f"{res.clean_acc:.2f}, robust {res.robust_acc['autoattack']:.2f}")


def throughput(device: torch.device, name: str, width: float, batch: int, iters: int,
               fast: bool) -> float:
    """Images/s of one paper-config TRADES-10 training step (forward, attack, backward, SGD)."""
    from prunekit.attacks.precision import training_attack_autocast
    from prunekit.losses import TRADES

    model = _model(name, width, device).train()
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    loss_fn = TRADES(eps=8 / 255, step_size=2 / 255, steps=10, beta=6.0)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(iters + 1):  # the first step warms up (cuDNN autotuning, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast), \
                training_attack_autocast(fast):
            loss, _ = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return batch / sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--quick", action="store_true",
                    help="small models and batches (for a CPU run or a smoke test)")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU visible (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}): nothing checked; run it on the GPU machine, or "
              f"--device cpu for the CPU variant", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    width, batch, iters, n_aa = (0.125, 16, 2, 8) if args.quick else (1.0, 128, 5, 64)
    check("device", lambda: check_device(device))
    check("bf16 autocast", lambda: check_bf16(device))
    check("channels_last", lambda: check_channels_last(device, width))
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cpu":
        check("DDP (gloo, 2 processes)", lambda: check_ddp("gloo"))
    elif gpus >= 2:
        check("DDP (NCCL, 2 GPUs)", lambda: check_ddp("nccl"))
    else:
        ROWS.append(("DDP (NCCL)", True, "skipped: 1 GPU visible"))
    check(f"AutoAttack on {device.type}", lambda: check_autoattack(device, width, n_aa))
    for name in ("vgg16", "resnet18"):
        def step(name: str = name) -> str:
            base = throughput(device, name, width, batch, iters, fast=False)
            fast = throughput(device, name, width, batch, iters, fast=True)
            return (f"{base:.0f} img/s fp32, {fast:.0f} img/s bf16 + channels_last "
                    f"({fast / base:.2f}x); width {width:g}, batch {batch}")
        check(f"TRADES-10 step, {name}", step)
    print("| check | ok | result |\n|---|---|---|")
    for name, ok, detail in ROWS:
        print(f"| {name} | {'yes' if ok else 'NO'} | {detail} |")
    return 0 if all(ok for _, ok, _ in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
