"""Weights from elsewhere: the state dict inside a checkpoint file written by prunekit or by
another tool, and the strict key + shape check before it goes into a model.

Formats read (always ``torch.load(weights_only=True)`` through :func:`prunekit.checkpoint.load`):
a prunekit model file (``save_model``) or pretraining cache entry (``{'state_dict': ...}``);
the AdversarialPruningBenchmark's ``{'state_dict': ...}`` or ``{'net': ...}`` (its loader,
utils/utils.py l.80-88, tries those two keys and silently keeps random weights when neither is
there: :func:`read_state_dict` refuses instead); a plain ``torch.save(model.state_dict())``.
A leading ``module.`` (DataParallel) is stripped when every key has it.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from torch import Tensor, nn

from prunekit import checkpoint as ckpt
from prunekit.errors import UserError

__all__ = ["WeightsError", "read_state_dict", "check_fits", "load_into"]

#: keys under which checkpoints of other tools keep their state dict, in the order tried
WRAPPER_KEYS = ("state_dict", "net", "model")
_SHOW = 3


class WeightsError(UserError, ValueError):
    """A weights file that cannot go into the model (one line: what does not fit)."""


def read_state_dict(path: str | os.PathLike, *, wrapped: bool = False) -> dict[str, Tensor]:
    """The state dict in ``path``; ``wrapped=True`` accepts only ``{'state_dict'|'net': ...}``
    (the benchmark's format) and refuses a file without either key."""
    blob = ckpt.load(path)
    keys = ("state_dict", "net") if wrapped else WRAPPER_KEYS
    if isinstance(blob, Mapping):
        for k in keys:
            if isinstance(blob.get(k), Mapping):
                return _strip_module(dict(blob[k]))
    if not wrapped and ckpt.is_state_dict(blob):
        return _strip_module(dict(blob))
    found = ", ".join(sorted(map(str, blob))[:6]) if isinstance(blob, Mapping) else \
        type(blob).__name__
    want = "a dict with 'state_dict' or 'net'" if wrapped else \
        "a state dict or a dict with 'state_dict', 'net' or 'model'"
    raise WeightsError(f"{path}: no weights found (need {want}; found {found or 'an empty dict'})")


def check_fits(model: nn.Module, state: Mapping[str, Any], what: str) -> None:
    """Strict key and shape check of ``state`` against ``model.state_dict()``; the one-line
    :class:`WeightsError` names the first missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and isinstance(state[k], Tensor) and state[k].shape != own[k].shape]
    parts = [f"{label} {len(items)} ({', '.join(items[:_SHOW])}{', ...' if len(items) > _SHOW else ''})"
             for label, items in (("missing", missing), ("unexpected", extra),
                                  ("mis-shaped (file vs model)", shapes)) if items]
    if parts:
        raise WeightsError(f"{what} does not fit the model {type(model).__name__}: "
                           f"{'; '.join(parts)}")


def load_into(model: nn.Module, path: str | os.PathLike, what: str, *,
              wrapped: bool = False) -> nn.Module:
    """:func:`read_state_dict` + :func:`check_fits` + ``load_state_dict(strict=True)``."""
    state = read_state_dict(path, wrapped=wrapped)
    check_fits(model, state, what)
    model.load_state_dict(state, strict=True)
    return model


def _strip_module(state: dict[str, Any]) -> dict[str, Any]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state
