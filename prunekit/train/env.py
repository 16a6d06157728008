"""Run environment: bf16 support and torch.distributed setup (device names:
:mod:`prunekit.devices`; seeds and RNG state: :mod:`prunekit.seeding`)."""
from __future__ import annotations

import functools
import logging
import os
import platform
from dataclasses import dataclass

import torch

__all__ = ["bf16_support", "resolve_amp", "DistEnv", "dist_env", "init_distributed"]

log = logging.getLogger(__name__)


def bf16_support(device: torch.device | str) -> tuple[bool, str]:
    """Whether bf16 autocast is *native* (fast) on ``device``: ``(ok, reason if not)``.

    CUDA: ``torch.cuda.is_bf16_supported`` without emulation (Ampere or newer). CPU: the CPU has
    bf16 instructions (x86 AVX512-BF16 or AMX-BF16, from torch's CPU capability report, else
    ``/proc/cpuinfo``; Arm ``bf16``) **and** a bf16 convolution under autocast runs and agrees
    with fp32. Emulated bf16 (oneDNN on plain AVX-512/AVX2) is slower than fp32, so it counts as
    unsupported.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            ok = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # older torch without the keyword
            ok = bool(torch.cuda.is_bf16_supported())
        return ok, "" if ok else "this GPU has no native bf16 (needs compute capability >= 8.0)"
    if device.type != "cpu":
        return False, f"bf16 autocast is not supported on {device.type}"
    return _cpu_bf16()


@functools.lru_cache(maxsize=1)
def _cpu_bf16() -> tuple[bool, str]:
    if not _cpu_has_bf16_instructions():
        return False, (f"this CPU ({platform.processor() or platform.machine()}) has no native "
                       f"bf16 instructions (AVX512-BF16, AMX-BF16 or Arm BF16)")
    try:
        w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
        x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        ref = torch.nn.functional.conv2d(x, w)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out = torch.nn.functional.conv2d(x, w)
        ok = out.dtype == torch.bfloat16 and torch.allclose(out.float(), ref, atol=0.1, rtol=0.05)
    except RuntimeError as exc:  # pragma: no cover - a torch build without bf16 kernels
        return False, f"bf16 autocast failed on this CPU ({str(exc).splitlines()[0]})"
    return (True, "") if ok else (False, "bf16 autocast gave wrong results on this CPU")


def _cpu_has_bf16_instructions() -> bool:
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        try:
            c = caps()
            return bool(c.get("avx512_bf16") or c.get("amx_bf16"))
        except (RuntimeError, AttributeError):  # pragma: no cover
            pass
    try:
        with open("/proc/cpuinfo") as fh:
            words = set(fh.read().split())
    except OSError:  # pragma: no cover - not Linux
        return False
    return bool(words & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_amp(amp: bool, device: torch.device | str) -> bool:
    """``amp`` as it will run: True only where :func:`bf16_support` holds; a request that cannot
    be honoured logs one warning line (once per device type) and trains in fp32."""
    if not amp:
        return False
    ok, reason = bf16_support(device)
    if not ok:
        _warn_once(torch.device(device).type, reason)
    return ok


@functools.lru_cache(maxsize=None)
def _warn_once(kind: str, reason: str) -> None:
    log.warning("amp: %s; training in fp32 instead (set amp: false to silence this)", reason)


@dataclass(frozen=True)
class DistEnv:
    """torch.distributed context (world size 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.barrier()


def dist_env() -> DistEnv:
    """The current distributed context (from an initialised process group or torchrun's env)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return DistEnv(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", "0")))
    return DistEnv(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device: torch.device) -> DistEnv:
    """Initialise the default process group when launched with torchrun (``WORLD_SIZE > 1``):
    NCCL on CUDA, gloo on the CPU. A no-op when already initialised or not distributed."""
    env = dist_env()
    if not env.enabled or torch.distributed.is_initialized():
        return env
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend)
    log.info("initialised torch.distributed (%s): rank %d of %d", backend, env.rank,
             env.world_size)
    return dist_env()
