"""Numeric precision of the attacks.

Attacks run in fp32 by default, even inside an autocast region. The training loop may opt the
*training-time* attack into the caller's bf16 autocast (:func:`training_attack_autocast`, used by
:func:`prunekit.train.fit` with ``amp``): the inner maximisation only has to produce a strong
training example, and sign-PGD uses only the sign of the input gradient, which bf16 (fp32's
exponent range, so no under/overflow) preserves on every coordinate that matters
(docs/training.md, "bf16 autocast and the training-time attack", has the argument and the
measurement). Evaluation never does: :func:`strict_fp32` turns autocast off on every device and
clears the opt-in, and the evaluator and the AutoAttack wrapper run inside it.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator

import torch
from torch import Tensor

__all__ = ["training_attack_autocast", "attack_precision", "strict_fp32",
           "training_attack_uses_autocast"]

_TRAIN_ATTACK_AUTOCAST: ContextVar[bool] = ContextVar("prunekit_train_attack_autocast",
                                                      default=False)


def training_attack_uses_autocast() -> bool:
    """True inside :func:`training_attack_autocast(True) <training_attack_autocast>`."""
    return _TRAIN_ATTACK_AUTOCAST.get()


@contextlib.contextmanager
def training_attack_autocast(enabled: bool) -> Iterator[None]:
    """Let attacks started in this block keep the surrounding autocast (training only)."""
    token = _TRAIN_ATTACK_AUTOCAST.set(bool(enabled))
    try:
        yield
    finally:
        _TRAIN_ATTACK_AUTOCAST.reset(token)


@contextlib.contextmanager
def attack_precision(x: Tensor) -> Iterator[None]:
    """The precision an attack on ``x`` runs in: fp32 (autocast disabled on ``x``'s device)
    unless the training loop opted in with :func:`training_attack_autocast`."""
    if _TRAIN_ATTACK_AUTOCAST.get():
        yield
        return
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """fp32 only: autocast off on the CPU and on CUDA, and the training opt-in cleared (the
    evaluator and AutoAttack run inside this whatever the caller set up)."""
    token = _TRAIN_ATTACK_AUTOCAST.set(False)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.autocast(device_type="cpu", enabled=False))
            if torch.cuda.is_available():
                stack.enter_context(torch.autocast(device_type="cuda", enabled=False))
            yield
    finally:
        _TRAIN_ATTACK_AUTOCAST.reset(token)
