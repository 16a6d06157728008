"""Resumable evaluation state: per-batch, per-attack results in a JSON file written atomically.

The file is keyed by a fingerprint of everything a batch result depends on (model weights and
buffers, eps, norm, attacks, seed, batch size, library versions); each batch also stores a hash
of its data, so a stale file (another model, other data, other settings) is never reused.
A path that holds anything but an evaluation state (a results CSV, a model, a folder) is refused
with :class:`EvalStateError` before anything is evaluated or written: it is never overwritten.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.atomic import atomic_write_json
from prunekit.paths import OutputPathError, output_file

__all__ = ["EvalState", "EvalStateError", "check_state_path", "model_hash", "tensor_hash",
           "flags_to_str", "str_to_flags"]

log = logging.getLogger(__name__)
VERSION = 1


def _update(h: "hashlib._Hash", t: Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def model_hash(model: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the model's state dict."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        if isinstance(t, Tensor):
            _update(h, t)
    return h.hexdigest()


def tensor_hash(*tensors: Tensor) -> str:
    """SHA-256 of tensors (for a batch's data)."""
    h = hashlib.sha256()
    for t in tensors:
        _update(h, t)
    return h.hexdigest()[:32]


def flags_to_str(flags: Tensor) -> str:
    return "".join("1" if b else "0" for b in flags.bool().tolist())


def str_to_flags(s: str) -> Tensor:
    return torch.tensor([c == "1" for c in s], dtype=torch.bool)


class EvalStateError(OutputPathError):
    """The state path holds something that is not an evaluation state (never overwritten)."""


def _is_state(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and {"version", "fingerprint", "batches"} <= set(d)


def check_state_path(path: str | os.PathLike, what: str = "evaluation state") -> Path:
    """Check that ``path`` is missing, empty or an evaluation state, and that its folder is
    writable (``what``: how the user named the path); raises :class:`EvalStateError` (one
    line) otherwise."""
    try:
        return output_file(path, what, "an evaluation state", _is_state)
    except OutputPathError as exc:
        raise EvalStateError(str(exc)) from None


class EvalState:
    """Per-batch results: ``batches[i] = {"data": hash, "clean": "0101", "seconds_clean": s,
    "attacks": {name: {"robust": "01..", "seconds": s, "grad_evals": n, "messages": [...]}}}``.

    ``path=None`` keeps everything in memory (no resume).
    """

    def __init__(self, path: str | os.PathLike | None, fingerprint: str) -> None:
        self.path = Path(path) if path is not None else None
        self.fingerprint = fingerprint
        self.batches: dict[int, dict[str, Any]] = {}
        self.loaded = False
        if self.path is None:
            return
        check_state_path(self.path)
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open(encoding="utf-8") as f:
                d = json.load(f)
            if d.get("version") != VERSION or d.get("fingerprint") != fingerprint:
                log.warning("evaluation state %s belongs to another model/data/settings; "
                            "starting afresh", self.path)
                return
            self.batches = {int(k): v for k, v in d.get("batches", {}).items()}
            self.loaded = True
            log.info("resuming evaluation from %s (%d batches started)", self.path,
                     len(self.batches))

    def batch(self, index: int, data_hash: str) -> dict[str, Any]:
        """The record for batch ``index``; a record with another data hash is discarded."""
        rec = self.batches.get(index)
        if rec is None or rec.get("data") != data_hash:
            if rec is not None:
                log.warning("evaluation state: batch %d holds other data; recomputing it", index)
            rec = {"data": data_hash, "attacks": {}}
            self.batches[index] = rec
        return rec

    def save(self) -> None:
        """Write the state atomically (:func:`prunekit.atomic.atomic_write_json`)."""
        if self.path is None:
            return
        atomic_write_json(self.path, {
            "version": VERSION, "fingerprint": self.fingerprint,
            "batches": {str(k): v for k, v in sorted(self.batches.items())}})

