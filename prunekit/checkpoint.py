"""Safe checkpoints: atomic writes, ``torch.load(..., weights_only=True)`` only.

* :func:`save` / :func:`load`: any tree of tensors, numbers, strings, lists, tuples and dicts.
  :func:`save` writes through :func:`prunekit.atomic.atomic_open` (temporary file, fsync,
  ``os.replace``), so a kill never leaves a truncated checkpoint. :func:`load` refuses anything
  that would need arbitrary unpickling (:class:`UnsafeCheckpointError`); nothing in such a file
  runs.
* :func:`save_model` / :func:`load_model`: a (possibly pruned) model as its builder spec
  (``model.prunekit_spec``), its ``state_dict`` and JSON metadata. Loading rebuilds the dense
  model from the spec and lets ``prunekit.pruning.rebuild`` shrink it / re-register weight masks
  from the shapes and mask buffers in the state dict, so no model object is ever unpickled.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from prunekit.atomic import atomic_open
from prunekit.errors import UserError, one_line
from prunekit.models import build_from_spec
from prunekit.paths import describe
from prunekit.pruning import rebuild
from prunekit.registry import OptionError, RegistryError

__all__ = ["drop_if_unreadable", "save", "load", "save_model", "load_model", "read_model_meta",
           "is_state_dict", "CheckpointError", "UnsafeCheckpointError", "MODEL_FORMAT"]

log = logging.getLogger(__name__)
MODEL_FORMAT = "prunekit.model/1"
PathLike = str | os.PathLike


class CheckpointError(UserError, ValueError):
    """The file is not a checkpoint prunekit can read (one-line message)."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs arbitrary unpickling (code execution) to load; it was not loaded."""


def save(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` (tensors / plain containers) to ``path`` with ``torch.save``."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def load(path: PathLike, map_location: str | torch.device | None = "cpu") -> Any:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file holds objects that only arbitrary unpickling could
            create (e.g. a pickled model or a booby-trapped ``__reduce__``); nothing was executed.
        CheckpointError: anything else that is not a readable checkpoint (a text file, a
            truncated or corrupt archive, a directory); one line saying what the file is.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's protocol notice would be a second line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on foreign bytes
        raise _load_error(path, exc) from None


def _load_error(path: Path, exc: BaseException) -> CheckpointError:
    """Classify a failed weights-only load into a one-line error (never repeating torch's advice
    to load without ``weights_only``)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    is_zip, is_pickle = head.startswith(b"PK\x03\x04"), head[:1] == b"\x80"
    if isinstance(exc, pickle.UnpicklingError) and (is_zip or is_pickle):
        return UnsafeCheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling ({_unpickler_reason(exc)}), "
            "which prunekit never does; only tensors and plain containers are loaded (save "
            "models with prunekit.checkpoint.save_model)")
    if not (is_zip or is_pickle):
        return CheckpointError(f"{path} is not a readable torch checkpoint: it is "
                               f"{describe(path)}; give a model file written by prunekit")
    return CheckpointError(f"{path} is not a readable torch checkpoint: it is truncated or "
                           f"corrupt ({_unpickler_reason(exc)}); re-create or re-copy it")


def _unpickler_reason(exc: BaseException) -> str:
    """The informative part of torch's error: the refused global, the unpickler's own line, or
    the first line that is not torch's generic weights-only advice."""
    msg = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", msg)
    if found:
        return f"unsupported global {found.group(1)}"
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[-1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else type(exc).__name__)
    for ln in lines:
        if "weights_only" not in ln.lower() and "weights only" not in ln.lower():
            return one_line(ln.split(". ")[0], 120)
    return type(exc).__name__


# ------------------------------------------------------------------------------------------------
def save_model(path: PathLike, model: nn.Module, meta: Mapping[str, Any] | None = None,
               input_shape: tuple[int, ...] | None = None) -> None:
    """Save a (possibly pruned / compacted / weight-masked) model for :func:`load_model`.

    ``model.prunekit_spec`` (set by ``prunekit.models`` on every built model: the builder name and
    its keyword arguments) is stored as JSON, with the ``state_dict`` and ``meta`` (JSON).
    ``input_shape`` (C, H, W) is kept so :func:`load_model` can trace the model at its real size.
    """
    spec = getattr(model, "prunekit_spec", None)
    if spec is None:
        raise ValueError(f"{type(model).__name__} has no prunekit_spec (build models with "
                         f"prunekit.MODELS.build so they can be saved and rebuilt)")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save(path, {"format": MODEL_FORMAT, "spec": json.dumps(_jsonable(spec), sort_keys=True),
                "state_dict": state, "meta": json.dumps(_jsonable(dict(meta or {})),
                                                        sort_keys=True),
                "input_shape": list(input_shape) if input_shape is not None else None})


def drop_if_unreadable(path: PathLike, why: str) -> bool:
    """Remove the checkpoint ``path`` if it cannot be loaded (truncated, damaged), with a
    warning ending in ``why`` (what happens instead); True if it was removed. An intact or
    missing file is left alone."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        load(path)
    except CheckpointError as exc:
        log.warning("removing unreadable %s (%s); %s", path, exc, why)
        path.unlink(missing_ok=True)
        return True
    return False


def read_model_meta(path: PathLike) -> dict[str, Any]:
    """The JSON metadata stored by :func:`save_model`."""
    return json.loads(_read_model(path)["meta"])


def load_model(path: PathLike, map_location: str | torch.device | None = "cpu",
               allow_import: bool = False) -> nn.Module:
    """Rebuild a model saved by :func:`save_model` (no unpickling of model objects).

    The dense model is rebuilt with ``prunekit.MODELS.build(spec)``, then
    ``prunekit.pruning.rebuild(dense, state_dict)`` restores the pruned structure (smaller
    channel counts, weight masks) and loads the weights. The metadata is attached as
    ``model.prunekit_meta``, the recorded input shape (C, H, W, or None) as
    ``model.prunekit_input_shape``. A model from a ``package.module:factory`` path that this
    process has not imported yet is imported only with ``allow_import=True`` (it runs that
    code). Anything that is not such a file is a one-line :class:`CheckpointError`.
    """
    blob = _read_model(path, map_location)
    try:
        spec = json.loads(blob["spec"])
        meta = json.loads(blob["meta"])
        dense = build_from_spec(spec, allow_import=allow_import)
        shape = blob.get("input_shape")
        example = torch.zeros(1, *shape) if shape else None
        model = rebuild(dense, blob["state_dict"], example)
    except (RegistryError, OptionError):  # a model this installation cannot build: already one
        raise                              # line naming the model (the CLI prints it so)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is a damaged prunekit model file: its weights do not "
                              f"fit its model spec ({type(exc).__name__}: {one_line(exc, 160)}); "
                              f"re-create it") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is a damaged prunekit model file: its meta is a JSON "
                              f"{type(meta).__name__}, not an object; re-create it")
    model.prunekit_meta = meta  # type: ignore[assignment]
    model.prunekit_input_shape = (  # type: ignore[assignment]
        tuple(int(v) for v in shape) if shape else None)
    if getattr(model, "prunekit_spec", None) is None:
        model.prunekit_spec = spec  # type: ignore[assignment]
    return model


def _read_model(path: PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    blob = load(path, map_location)
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        what = "a bare state_dict" if is_state_dict(blob) else f"a torch {type(blob).__name__}"
        raise CheckpointError(f"{path} is {what}, not a prunekit model file (format "
                              f"{MODEL_FORMAT}, written by prunekit train or "
                              f"prunekit.checkpoint.save_model, which also stores the model spec)")
    return blob


def is_state_dict(blob: Any) -> bool:
    """A non-empty mapping of str -> tensor (what ``torch.save(model.state_dict())`` writes)."""
    return isinstance(blob, dict) and bool(blob) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in blob.items())


def _jsonable(obj: Any) -> Any:
    """JSON-compatible copy (tuples -> lists, other objects -> str)."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))

