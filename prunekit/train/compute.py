"""Training compute, measured (the CSV columns ``train_passes`` / ``train_cpu_s``,
docs/results-schema.md): example-weighted forward passes through the model and process CPU
seconds.

A *pass* is one example through one forward of the model: a batch of ``B`` counts ``B``.
Every forward counts -- each step of a training-time attack, each outer forward, a loss's
no-grad statistics forward -- whether or not a backward follows, so the count is the
implementation's real cost, comparable across losses (docs/training.md, "Training compute").

* :class:`ForwardCounter` ``(module)`` counts the calls of one module (a pre-forward hook on
  it, so a DDP wrapper's call of its ``module`` counts once);
* ``ForwardCounter(None)`` counts every *outermost* module call in the process (global module
  hooks with a call depth), for code that builds its own networks (a searcher's supernet);
* :func:`sum_or_none` totals per-epoch / per-stage figures where an unknown part (an old
  checkpoint or cache entry that never counted) makes the total unknown, never 0.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from torch import Tensor, nn
from torch.nn.modules import module as _module
from torch.utils.hooks import RemovableHandle

__all__ = ["ForwardCounter", "cpu_seconds", "sum_or_none"]


def cpu_seconds() -> float:
    """Process CPU time (user + system, all threads of this process; DataLoader worker
    processes are not included)."""
    return time.process_time()


def _batch_size(args: tuple[Any, ...]) -> int:
    for a in args:
        if isinstance(a, Tensor):
            return int(a.shape[0]) if a.dim() else 1
    return 0


class ForwardCounter:
    """Context manager counting example-weighted forward passes (see the module docstring).

    Example::

        with ForwardCounter(model) as fc:
            loss(model, x, y)
        fc.passes   # e.g. (steps + 2) * len(x) for pgd_at
    """

    def __init__(self, module: nn.Module | None = None) -> None:
        self.module = module
        self.passes = 0
        self._depth = 0
        self._handles: list[RemovableHandle] = []

    #: its hooks only observe (count) and never change a module's inputs or outputs, so code
    #: that refuses hooked modules (the certify bounds) may accept them
    observes_only = True

    def _count(self, _mod: nn.Module, args: tuple[Any, ...]) -> None:
        self.passes += _batch_size(args)

    def _enter_call(self, _mod: nn.Module, args: tuple[Any, ...]) -> None:
        if self._depth == 0:
            self.passes += _batch_size(args)
        self._depth += 1

    def _leave_call(self, _mod: nn.Module, _args: Any, _out: Any) -> None:
        self._depth = max(0, self._depth - 1)

    def __enter__(self) -> "ForwardCounter":
        if self.module is not None:
            self._handles = [self.module.register_forward_pre_hook(self._count)]
        else:
            self._handles = [_module.register_module_forward_pre_hook(self._enter_call),
                             _module.register_module_forward_hook(self._leave_call,
                                                                  always_call=True)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._depth = 0


def sum_or_none(values: Iterable[float | int | None]) -> float | None:
    """``sum(values)``, or None if any value is None (unknown stays unknown, never 0)."""
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += float(v)
    return total
