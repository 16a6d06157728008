"""Run claims: the one lock that keeps two processes from running the same grid run.

A process runs a run only while it holds the non-blocking file lock ``OUT/.claims/<run_id>.lock``
(``flock``: the kernel releases it when the holder dies, however it dies, so a killed process's
run is claimable again at once). Serial benches, ``--jobs`` workers and launcher array tasks all
take it, so two benches on one ``--out`` never train the same run in the same work directory.

Beside the lock, a claim leaves a marker ``<run_id>.<token>`` holding the claimer's pid: one
token per invocation, so an invocation tries a run at most once (a failed run is not retried by
another of its workers) and the ``--jobs`` parent knows which runs a dead worker had claimed
(:meth:`Claims.claimed_by`). The markers of an invocation are removed when it ends.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["Claims", "CLAIMS_DIR"]

#: folder (inside ``--out``) of the claim locks and markers
CLAIMS_DIR = ".claims"


class Claims:
    """The claims of one invocation (``token``) in ``out/.claims``."""

    def __init__(self, out: Path, token: str | None = None) -> None:
        self.dir = Path(out) / CLAIMS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token = token or uuid.uuid4().hex[:12]

    def _lock(self, run_id: str) -> FileLock:
        return FileLock(str(self.dir / f"{run_id}.lock"))

    def _marker(self, run_id: str) -> Path:
        return self.dir / f"{run_id}.{self.token}"

    def take(self, run_id: str) -> FileLock | None:
        """The held claim lock of ``run_id``, or None if another process holds it or this
        invocation has tried the run already. Release it after the run's row is written."""
        lock = self._lock(run_id)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return None
        if self._marker(run_id).exists():
            lock.release()
            return None
        self._marker(run_id).write_text(str(os.getpid()))
        return lock

    def busy(self, run_id: str) -> bool:
        """Whether another process holds ``run_id``'s claim right now."""
        lock = self._lock(run_id)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    def tried(self) -> set[str]:
        """run_ids this invocation has claimed so far."""
        return {f.name[:-len(self.token) - 1] for f in self.dir.glob(f"*.{self.token}")}

    def claimed_by(self) -> dict[str, int]:
        """run_id -> pid of the process of this invocation that claimed it."""
        out: dict[str, int] = {}
        for f in self.dir.glob(f"*.{self.token}"):
            with contextlib.suppress(OSError, ValueError):
                out[f.name[:-len(self.token) - 1]] = int(f.read_text() or "0")
        return out

    def clear(self) -> None:
        """Remove this invocation's markers (the next invocation may try every run again)."""
        for f in self.dir.glob(f"*.{self.token}"):
            f.unlink(missing_ok=True)
