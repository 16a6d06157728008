"""Seeds and random streams: the one place prunekit derives seeds and saves / restores RNGs.

* :func:`derive_seed` -- a 63-bit seed as a pure function of its parts (SHA-256 of the parts
  joined by ``sep``): the pipeline's stage seeds, the loaders' epoch seeds, the evaluator's
  per-(attack, batch) seeds (``sep="|"``), so a resumed run draws what an uninterrupted one does;
* :func:`derive_seed_numpy` -- the searchers' derivation (NumPy ``SeedSequence``). It gives other
  values than :func:`derive_seed` for the same parts and is kept because the recorded LRNAS
  searches were drawn from it (switching would change every searched genotype);
* :func:`method_seed` -- a randomised method's own stream: derived from (the value drawn from
  torch's generator, which the pipeline seeds from the run seed before ``attach``, and the
  method's name), so two methods of the same run seed never share a draw (issue 19: the random
  control used to keep the top-k of D2BC's own initial gates);
* :func:`seed_everything`, :func:`rng_state` / :func:`set_rng_state` (checkpointable RNG state of
  torch, NumPy and Python), :func:`preserve_rng` (a block that leaves the global streams as it
  found them, e.g. around pyautoattack, which reseeds them).
"""
from __future__ import annotations

import contextlib
import hashlib
import random
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["derive_seed", "method_seed", "derive_seed_numpy", "seed_everything", "rng_state", "set_rng_state",
           "preserve_rng"]


def derive_seed(*parts: Any, sep: str = "/") -> int:
    """A 63-bit seed that is a pure function of ``parts`` (e.g. ``(seed, stage, epoch, rank)``)."""
    blob = sep.join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & (2**63 - 1)


def method_seed(name: str, seed: int | None = None) -> int:
    """``seed`` if given, else a 31-bit seed derived from ``(torch draw, name)``: one draw from
    torch's global generator (seeded from the run seed by the pipeline) passed through
    :func:`derive_seed` with the method's name, so the stream is a pure function of (run seed,
    method name) and independent between methods."""
    if seed is not None:
        return int(seed)
    return derive_seed(int(torch.randint(0, 2**31 - 1, ())), name) % (2**31 - 1)


def derive_seed_numpy(seed: int, *parts: int | str) -> int:
    """A 63-bit seed that is a pure function of ``(seed, *parts)`` (NumPy's SeedSequence; the
    searchers' derivation, see the module docstring)."""
    ints = [int(seed) % 2**63] + [int(p) if isinstance(p, int) else
                                  int.from_bytes(str(p).encode()[:8].ljust(8, b"\0"), "little")
                                  for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1, np.uint64)[0]) & (2**63 - 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU, CUDA), NumPy and Python as tensors / plain values, so they
    survive ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [py[0], list(py[1]), py[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    ver, internal, gauss = state["python"]
    random.setstate((ver, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserve_rng(device: torch.device) -> Iterator[None]:
    """Save and restore the global CPU (and ``device``'s CUDA) RNG state."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield
