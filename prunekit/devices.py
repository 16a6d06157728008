"""Devices: the one place a device name is checked and resolved, and a model's device read.

* :func:`is_device_name` -- the accepted forms (``auto``, ``cpu``, ``cuda``, ``cuda:N``), used by
  the config's validation and the CLI's ``--device`` before anything is built;
* :func:`select_device` -- a name to a ``torch.device`` (``auto``: CUDA if available; under
  torchrun ``cuda:LOCAL_RANK``), a one-line :class:`~prunekit.errors.ConfigError` otherwise;
* :func:`model_device` -- where a model lives (its first parameter, else its first buffer).
"""
from __future__ import annotations

import os

import torch
from torch import nn

from prunekit.errors import ConfigError

__all__ = ["DEVICE_FORMS", "is_device_name", "select_device", "model_device"]

#: the accepted device names, for one-line errors
DEVICE_FORMS = "auto, cpu, cuda or cuda:N"


def is_device_name(name: str) -> bool:
    """Whether ``name`` (stripped) is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    head, colon, index = name.strip().partition(":")
    if not colon:
        return head in ("auto", "cpu", "cuda")
    return head == "cuda" and index.isdigit()


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Under torchrun with CUDA, ``auto``/``cuda`` mean ``cuda:LOCAL_RANK``.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip()
    if not is_device_name(name):
        raise ConfigError(f"device must be {DEVICE_FORMS}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; "
                          f"use device: auto or cpu")
    if name == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local if int(os.environ.get("WORLD_SIZE", "1")) > 1
                            else torch.cuda.current_device())
    return torch.device(name)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
