"""Process supervision for grids: SIGTERM handled like Ctrl-C, workers that die with their parent,
and a readable cause for a worker's exit code (docs/reliability.md).

- :func:`sigterm_as_interrupt`: SIGTERM (``kill``, a scheduler's stop, systemd) raises
  ``KeyboardInterrupt`` like Ctrl-C, so the run in progress writes no row and the grid stops with
  the same one-line ``interrupted:`` message.
- :func:`die_with_parent`: a ``--jobs`` worker gets SIGTERM when its parent dies, however it dies
  (SIGKILL, the OOM killer): Linux ``prctl(PR_SET_PDEATHSIG)`` through ctypes; elsewhere a
  daemon thread that watches the parent pid. No orphan keeps training or appending rows.
- :func:`exit_cause`: ``multiprocessing``'s exit code as words (``killed by SIGKILL``).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from typing import Any, Iterator

__all__ = ["sigterm_as_interrupt", "die_with_parent", "exit_cause", "INTERRUPTED", "FATAL"]

#: a worker's exit code after Ctrl-C / SIGTERM (the shell's 128 + SIGINT)
INTERRUPTED = 130
#: a worker's exit code after an error that is not a run's own failure (a results write failed)
FATAL = 3
_PR_SET_PDEATHSIG = 1


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` (main thread only; elsewhere a
    no-op). The previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def die_with_parent(parent_pid: int) -> None:
    """Make this process get SIGTERM when ``parent_pid`` (its parent) ends; if it has ended
    already, raise ``KeyboardInterrupt`` now."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if not _pdeathsig(signal.SIGTERM):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="prunekit-parent-watch").start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        raise KeyboardInterrupt("parent ended")


def _pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no libc / no prctl
        return False


def _watch_parent(parent_pid: int) -> None:  # pragma: no cover - non-Linux fallback
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def exit_cause(exitcode: int | None) -> str:
    """``Process.exitcode`` as words: ``killed by SIGKILL`` (negative: the signal), ``stopped by
    Ctrl-C or SIGTERM`` (130), ``exit code N``."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    if exitcode == INTERRUPTED:
        return "stopped by Ctrl-C or SIGTERM"
    return f"exit code {exitcode}"
