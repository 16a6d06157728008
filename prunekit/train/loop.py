"""The one training loop: adversarial loss, optional pruner hooks, per-epoch checkpoints and exact
resume, JSONL log, tqdm progress, bf16 autocast / channels_last (CPU and CUDA), DDP under
torchrun."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from prunekit import checkpoint as ckpt
from prunekit.atomic import atomic_write_text
from prunekit.attacks.precision import training_attack_autocast
from prunekit.devices import model_device
from prunekit.seeding import derive_seed, rng_state, seed_everything, set_rng_state
from prunekit.train.compute import ForwardCounter, cpu_seconds, sum_or_none
from prunekit.train.env import DistEnv, dist_env, resolve_amp
from prunekit.train.finite import NonFiniteLossError, NonFiniteWeightsError, \
    check_finite_state
from prunekit.train.loader import set_loader_epoch

__all__ = ["fit", "FitResult", "NonFiniteLossError", "NonFiniteWeightsError",
           "check_finite_state", "progress_enabled", "loss_replays", "epoch_line"]

log = logging.getLogger(__name__)
#: one line per epoch (loss, accuracies, seconds, ETA of the stage); ``prunekit train`` shows it
#: on stdout by default (a log file gets it too), library users attach a handler if they want it
progress_log = logging.getLogger("prunekit.progress")
CKPT_FORMAT = "prunekit.fit/1"
AdvLossFn = Callable[[nn.Module, Tensor, Tensor], "tuple[Tensor, dict[str, float]]"]


@dataclass
class FitResult:
    """What :func:`fit` did: epochs done in total, training seconds summed over the epochs (across
    resumes), the per-epoch records and the last epoch's averaged stats; :attr:`passes` /
    :attr:`cpu_s` the measured compute summed over the epochs (None when an epoch record of an
    older checkpoint lacks it), :attr:`warnings` what the loss flagged (e.g. catastrophic
    overfitting)."""

    epochs: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0

    @property
    def last(self) -> dict[str, Any]:
        return dict(self.history[-1]) if self.history else {}

    @property
    def passes(self) -> int | None:
        """Example-weighted forward passes of every epoch (:mod:`prunekit.train.compute`)."""
        total = sum_or_none(r.get("passes") for r in self.history)
        return None if total is None else int(total)

    @property
    def cpu_s(self) -> float | None:
        """Process CPU seconds of every epoch's steps (all ranks summed under DDP)."""
        return sum_or_none(r.get("cpu_s") for r in self.history)

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.history for w in r.get("warnings", [])]


def progress_enabled(flag: bool | None = None) -> bool:
    """tqdm bars: ``flag`` if given, else on when stderr is a TTY and ``PRUNEKIT_PROGRESS`` is not
    ``0``/``false``/``off``."""
    if flag is not None:
        return flag
    if os.environ.get("PRUNEKIT_PROGRESS", "").lower() in ("0", "false", "off", "no"):
        return False
    return sys.stderr.isatty()


def fit(model: nn.Module, loss: AdvLossFn, optimizer: torch.optim.Optimizer,
        scheduler: Any, loader: Any, epochs: int, *, pruner: Any = None,
        checkpoint: str | os.PathLike | None = None, log_path: str | os.PathLike | None = None,
        seed: int = 0, device: torch.device | str | None = None, amp: bool = False,
        channels_last: bool = False, progress: bool | None = None, stage: str = "train",
        dist: DistEnv | None = None, amp_attack: bool = True,
        tracker: Any = None) -> FitResult:
    """Train ``model`` for ``epochs`` epochs with an adversarial ``loss``.

    Per step: ``loss(model, x, y)`` (+ ``pruner.penalty()``), backward, ``optimizer.step()``,
    ``pruner.on_step_end(global_step)`` (``pruner.begin_stage(epochs, steps per epoch)`` once
    before the first); each minibatch is run ``loss.replays`` times (default 1;
    free adversarial training, :class:`prunekit.losses.base.AdvLoss`), each replay a full step.
    Per epoch: ``loss.begin_epoch(epoch, history)`` before the first step and
    ``loss.end_epoch(model)`` after the last (when the loss has them; what ``end_epoch`` returns
    joins the epoch record), ``pruner.on_epoch_end(epoch)``, ``scheduler.step()``, one JSONL
    record, one checkpoint. The record carries the epoch's measured compute: ``passes``
    (example-weighted forward passes through ``model``: every attack step and every outer
    forward, :class:`prunekit.train.compute.ForwardCounter`) and ``cpu_s`` (process CPU
    seconds); under DDP both are summed over the ranks. The pruner must already be attached
    and its ``param_groups`` be in ``optimizer`` (the pipeline does both).

    Resume: if ``checkpoint`` exists, the model, optimizer, scheduler, pruner and RNG states and
    the history are restored and training continues at the next epoch (a checkpoint of a finished
    fit just restores the states). Determinism: at every epoch start the Python/NumPy/torch RNGs
    and the loader's shuffling generator are re-seeded from ``(seed, stage, epoch, rank)``, so the
    run is a pure function of the seed and resuming at an epoch boundary is exact.

    Precision: ``amp`` runs every training forward pass under bf16 autocast where bf16 is native
    (:func:`prunekit.train.env.resolve_amp`; elsewhere one warning and fp32), the training-time
    attack included unless ``amp_attack=False``; losses, softmax and KL stay fp32 and the
    parameters, gradients and optimizer state are fp32 throughout. ``channels_last`` converts the
    model and every batch (CPU and CUDA); the model is left in that memory format. ``tracker``
    (:mod:`prunekit.train.tracking`) receives every epoch's record on rank 0.

    Under torch.distributed (``dist.enabled``) the model is wrapped in DistributedDataParallel;
    gradients of optimizer parameters outside the model (pruner gates) are all-reduced too; only
    rank 0 writes the checkpoint and the log.

    After every epoch, before its checkpoint is written, every parameter and buffer of the model
    (BatchNorm statistics included) and every optimizer parameter is checked for NaN/inf.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (epoch and step in the message).
        NonFiniteWeightsError: a weight or buffer is NaN/inf after an epoch (stage, epoch,
            optimizer settings and the first bad tensor in the message).
    """
    dist = dist if dist is not None else dist_env()
    device = torch.device(device) if device is not None else model_device(model)
    use_amp = resolve_amp(amp, device)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    start, history = 0, []
    if ckpt_path is not None and ckpt_path.exists():
        start, history = _restore(ckpt_path, model, optimizer, scheduler, pruner, epochs, loader)
        log.info("%s: resumed from %s at epoch %d/%d", stage, ckpt_path, start, epochs)
    train_model = _wrap_ddp(model, device) if dist.enabled else model
    extra = _extra_params(model, optimizer) if dist.enabled else []
    steps_per_epoch = len(loader)
    show = progress_enabled(progress) and dist.is_main
    replays = loss_replays(loss)
    if pruner is not None and hasattr(pruner, "begin_stage"):
        pruner.begin_stage(epochs, steps_per_epoch * replays)
    for epoch in range(start, epochs):
        set_loader_epoch(loader, epoch, seed)
        seed_everything(derive_seed(seed, stage, "epoch", epoch, dist.rank))
        model.train()
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        if hasattr(loss, "begin_epoch"):
            loss.begin_epoch(epoch, history)
        sums: dict[str, float] = {}
        n_seen = 0
        bar = _bar(loader, show, f"{stage} {epoch + 1}/{epochs}")
        with ForwardCounter(model) as counter:
            for i, (x, y) in enumerate(bar):
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if hasattr(loss, "set_position"):   # schedules (IBP eps ramp): fractional epoch
                    loss.set_position(epoch + i / max(steps_per_epoch, 1), stage)
                for r in range(replays):
                    where = f"epoch {epoch} step {i}" + (f" replay {r}" if replays > 1 else "")
                    stats = _step(train_model, loss, optimizer, pruner, x, y, autocast,
                                  use_amp and amp_attack, extra, dist, stage, where)
                    if pruner is not None:
                        pruner.on_step_end((epoch * steps_per_epoch + i) * replays + r)
                    b = int(y.shape[0])
                    n_seen += b
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * b
                if show and i % 10 == 0:
                    bar.set_postfix(loss=f"{sums['loss'] / n_seen:.3f}",
                                    acc=f"{sums.get('clean_acc', 0.0) / n_seen:.3f}",
                                    adv=f"{sums.get('adv_acc', 0.0) / n_seen:.3f}")
            loss_record = dict(loss.end_epoch(model)) if hasattr(loss, "end_epoch") else {}
        compute = _reduce_sums({"passes": float(counter.passes),
                                "cpu_s": cpu_seconds() - cpu0}, dist, device)
        lr = float(optimizer.param_groups[0]["lr"])
        if pruner is not None:
            pruner.on_epoch_end(epoch)
        scheduler.step()
        means = _reduce_means(sums, n_seen, dist, device)
        if dist.enabled:
            _broadcast_buffers(model)
        record = {"stage": stage, "epoch": epoch, "lr": lr, **means, **loss_record,
                  "passes": int(compute["passes"]), "cpu_s": round(compute["cpu_s"], 3),
                  "seconds": round(time.perf_counter() - t0, 3),
                  "precision": "bf16" if use_amp else "fp32"}
        history.append(record)
        log.info("%s epoch %d/%d: %s", stage, epoch + 1, epochs,
                 ", ".join(f"{k}={v:.4g}" for k, v in means.items()))
        progress_log.info("%s", epoch_line(stage, epoch, epochs, means, history[start:]))
        check_finite_state(model, optimizer, f"{stage}: after epoch {epoch + 1}/{epochs}", lr,
                           inputs=x if n_seen else None)
        if dist.is_main:
            if ckpt_path is not None:
                ckpt.save(ckpt_path, _state(epoch + 1, epochs, model, optimizer, scheduler,
                                            pruner, history, loader))
            if log_path is not None:
                _write_jsonl(Path(log_path), history)
            if tracker is not None:  # prunekit.train.tracking
                tracker.log_epoch(stage, epoch, record)
        dist.barrier()
    if start >= epochs:  # nothing trained here: check what the checkpoint restored
        check_finite_state(model, optimizer, f"{stage}: restored from {ckpt_path}",
                           float(optimizer.param_groups[0]["lr"]))
    seconds = float(sum(r.get("seconds", 0.0) for r in history))
    return FitResult(epochs=max(epochs, start), seconds=seconds, history=history,
                     resumed_from=start)


# ------------------------------------------------------------------------------------------------
def loss_replays(loss: Any) -> int:
    """How many times :func:`fit` runs each minibatch: the loss's ``replays`` (default 1)."""
    replays = getattr(loss, "replays", 1)
    if isinstance(replays, bool) or not isinstance(replays, int) or replays < 1:
        raise ValueError(f"{loss!r}: replays must be an int >= 1, got {replays!r}")
    return replays


def _step(model: nn.Module, loss: AdvLossFn, optimizer: torch.optim.Optimizer, pruner: Any,
          x: Tensor, y: Tensor, autocast: dict[str, Any], amp_attack: bool,
          extra: list[Tensor], dist: DistEnv, stage: str, where: str) -> dict[str, float]:
    """One optimizer step on ``(x, y)``: loss (+ penalty), NaN check, backward, step."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(**autocast), training_attack_autocast(amp_attack):
        value, stats = loss(model, x, y)
        if pruner is not None:
            pen = pruner.penalty()
            value = value + pen.to(value.device)
            stats = {**stats, "penalty": float(pen.detach().item()),
                     "loss": float(value.detach().item())}
    if not bool(torch.isfinite(value.detach()).all()):
        raise NonFiniteLossError(
            f"{stage}: loss is {value.detach().item()} at {where} "
            f"(lr {optimizer.param_groups[0]['lr']:.3g}); lower the learning rate")
    value.backward()
    if extra:
        _allreduce_grads(extra, dist.world_size)
    optimizer.step()
    return stats


def epoch_line(stage: str, epoch: int, epochs: int, means: dict[str, float],
               done: list[dict[str, Any]]) -> str:
    """``pretrain epoch 3/10: loss 1.234, clean 45.6 %, adv 30.1 %, 2.3 s/epoch, ETA 16 s``:
    the ETA of the stage is the mean epoch time of this session times the epochs left."""
    per = sum(r.get("seconds", 0.0) for r in done) / max(len(done), 1)
    left = per * (epochs - epoch - 1)
    parts = [f"loss {means.get('loss', math.nan):.4g}"]
    for key, name in (("clean_acc", "clean"), ("adv_acc", "adv")):
        if key in means:
            parts.append(f"{name} {100 * means[key]:.1f} %")
    eta = f"{left:.0f} s" if left < 120 else f"{left / 60:.1f} min"
    return f"{stage} epoch {epoch + 1}/{epochs}: {', '.join(parts)}, {per:.1f} s/epoch, ETA {eta}"


def _bar(loader: Any, show: bool, desc: str) -> Any:
    if not show:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)


def _wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, output_device=device.index if ids else None)


def _extra_params(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """Optimizer parameters DDP does not manage (e.g. pruner gates kept outside the model)."""
    own = {id(p) for p in model.parameters()}
    return [p for g in optimizer.param_groups for p in g["params"] if id(p) not in own]


def _allreduce_grads(params: list[Tensor], world: int) -> None:
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(world)


def _broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's BatchNorm statistics to every rank (DDP only syncs them at the next forward), so
    the replicas are identical at every epoch boundary, where checkpoints are taken."""
    for b in model.buffers():
        torch.distributed.broadcast(b, src=0)


def _reduce_sums(values: dict[str, float], dist: DistEnv,
                 device: torch.device) -> dict[str, float]:
    """``values`` summed over the ranks (unchanged without DDP)."""
    if not dist.enabled:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def _reduce_means(sums: dict[str, float], n: int, dist: DistEnv,
                  device: torch.device) -> dict[str, float]:
    keys = sorted(sums)
    if dist.enabled:
        t = torch.tensor([sums[k] for k in keys] + [float(n)], dtype=torch.float64,
                         device=device)
        torch.distributed.all_reduce(t)
        vals, n = t[:-1].tolist(), int(t[-1].item())
        sums = dict(zip(keys, vals))
    return {k: sums[k] / max(n, 1) for k in keys}


def _loader_generator(loader: Any) -> torch.Generator | None:
    gen = getattr(loader, "generator", None)
    return gen if gen is not None else getattr(getattr(loader, "sampler", None), "generator", None)


def _state(done: int, epochs: int, model: nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any, pruner: Any, history: list[dict[str, Any]],
           loader: Any) -> dict[str, Any]:
    rng = rng_state()
    gen = _loader_generator(loader)
    if gen is not None:  # re-seeded per epoch anyway; kept for completeness
        rng["loader"] = gen.get_state()
    return {"format": CKPT_FORMAT, "epoch": done, "epochs": epochs,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "pruner": pruner.state_dict() if pruner is not None else None,
            "rng": rng, "history": history}


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             pruner: Any, epochs: int, loader: Any) -> tuple[int, list[dict[str, Any]]]:
    state = ckpt.load(path)
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise ckpt.CheckpointError(f"{path} is not a prunekit training checkpoint; move it away "
                                   f"to restart this stage")
    if int(state["epochs"]) != int(epochs):
        raise ckpt.CheckpointError(f"{path} was written for {state['epochs']} epochs but this "
                                   f"run asks for {epochs}; use a fresh work directory")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if pruner is not None and state.get("pruner") is not None:
        pruner.load_state_dict(state["pruner"])
    set_rng_state(state["rng"])
    gen = _loader_generator(loader)
    if gen is not None and "loader" in state["rng"]:
        gen.set_state(state["rng"]["loader"])
    return int(state["epoch"]), list(state["history"])


def _write_jsonl(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite the whole log from the checkpointed history (atomic; consistent after resume)."""
    atomic_write_text(path, "".join(
        json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in rec.items()}) + "\n" for rec in history))
