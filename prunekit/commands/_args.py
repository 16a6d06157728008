"""Argument types shared by the subcommands: each rejects a bad value with one line (argparse
prints ``prunekit CMD: error: argument --X: MESSAGE``)."""
from __future__ import annotations

import argparse
import math

import torch

from prunekit.devices import DEVICE_FORMS, is_device_name

__all__ = ["positive_int", "finite_float", "n_examples", "device"]


def positive_int(text: str) -> int:
    """An integer >= 1 (``--threads``, ``--batch-size``)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def finite_float(text: str) -> float:
    """A finite number >= 0 (``--eps``)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def n_examples(text: str) -> int | None:
    """``all`` (every example: None) or an integer >= 1 (``--n``); 0 is refused, not 'all'."""
    if text.lower() == "all":
        return None
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'all', got {text!r}") \
            from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'all' (every example), got {v}")
    return v


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` that exists on this machine."""
    name = text.strip()
    if not is_device_name(name):
        raise argparse.ArgumentTypeError(f"must be {DEVICE_FORMS}, got {text!r}")
    if name in ("auto", "cpu"):
        return name
    index = name.partition(":")[2]
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{name}: CUDA is not available on this machine; use "
                                         f"cpu (or auto)")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise argparse.ArgumentTypeError(f"{name}: this machine has {count} CUDA device(s), "
                                         f"cuda:0 to cuda:{count - 1}")
    return name
