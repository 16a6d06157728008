"""Local parallel grids (``prunekit bench --jobs N``): N spawned worker processes, one torch
thread each by default, take the unfinished runs one at a time and append to the one results CSV
(whose appends are atomic under its file lock).

Scheduling: a worker claims a run by holding a non-blocking file lock ``OUT/.claims/<run_id>.lock``
while it runs it, and prefers, in order, runs whose dense pretraining is already finished (a run
of the same pretraining group has an ``ok`` row), then runs of a group nobody works on, then the
rest (which wait on the pipeline's pretraining-cache lock), grid order within each class; so two
workers never train the same pretraining, and a second group's pretraining starts while the first
one trains. A run is attempted at most once per invocation (a failed run is not retried by
another worker until the next invocation).

Ctrl-C (SIGINT to the parent, or to the whole process group as a terminal sends it): every
worker stops where it is (an interrupted run writes no row; its checkpoints let the next
invocation resume it), the parent waits for them and raises :class:`GridInterrupted`, whose
one-line message the CLI prints. The CSV only ever holds complete rows.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from filelock import FileLock, Timeout

from prunekit.bench.grid import Grid, GridRun
from prunekit.bench.one_run import GridSummary, resolve_run_fn, run_one
from prunekit.bench.store import ResultsStore

__all__ = ["run_parallel", "GridInterrupted", "interrupted_message"]

log = logging.getLogger(__name__)
#: how long the parent waits for interrupted workers before terminating them (seconds)
STOP_TIMEOUT = 60.0


class GridInterrupted(KeyboardInterrupt):
    """A grid stopped by Ctrl-C; ``str(exc)`` is the one-line message for the user."""


def interrupted_message(summary: Any) -> str:
    """``interrupted: ...`` with what this invocation finished and what is left (from the CSV,
    which is authoritative: a worker's last report may not have reached the parent)."""
    store = ResultsStore(summary.csv_path)
    rows = store.rows() if store.path.exists() else []
    done = {r["run_id"] for r in rows if r["status"] == "ok"}
    mine = {r.run_id for r in summary.runs}
    new = len((done & mine) - {i for i, st in summary.status.items() if st == "ok"})
    left = len(mine - done)
    return (f"interrupted: {new} runs finished in this session, {left} left; "
            f"{summary.csv_path} holds {len(rows)} complete rows; re-run the same command to "
            f"resume")


# ------------------------------------------------------------------------------------------------
def run_parallel(grid: Grid, runs: Sequence[GridRun], summary: Any, jobs: int, *,
                 run_fn: Any, cache: Path, device: str | None, threads: int | None,
                 say: Callable[[str], None]) -> Any:
    """Run ``runs`` (not yet ``ok``) on ``jobs`` local workers; fills and returns ``summary``."""
    out = summary.out_dir
    todo = [r for r in runs if summary.status[r.run_id] != "ok"]
    summary.skipped = [r.run_id for r in runs if summary.status[r.run_id] == "ok"]
    n = min(jobs, len(todo))
    say(f"grid {grid.name}: {len(runs)} runs, {len(summary.skipped)} finished, {len(todo)} to "
        f"run on {n} local worker(s) -> {summary.csv_path}")
    if not n:
        return summary
    claims = out / ".claims"
    claims.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    started = ctx.Value("i", 0)  # runs started by all workers: the global [k/N] count
    procs = [ctx.Process(target=_worker, name=f"prunekit-job-{k}",
                         args=(grid, list(todo), str(out), str(cache), run_fn, device,
                               threads or 1, k, token, messages, logging.getLogger().level,
                               started))
             for k in range(n)]
    for p in procs:
        p.start()
    try:
        _collect(procs, messages, summary, say)
    except KeyboardInterrupt:
        _stop(procs)
        raise GridInterrupted(interrupted_message(summary)) from None
    finally:
        for f in claims.glob(f"*.{token}"):
            f.unlink(missing_ok=True)
    if any(p.exitcode == 130 for p in procs):  # a worker was interrupted on its own
        raise GridInterrupted(interrupted_message(summary))
    return summary


def _collect(procs: list[Any], messages: Any, summary: Any, say: Callable[[str], None]) -> None:
    while True:
        try:
            kind, *payload = messages.get(timeout=0.5)
        except queue_mod.Empty:
            if not any(p.is_alive() for p in procs):
                break
            continue
        if kind == "say":
            say(payload[0])
        elif kind == "result":
            run_id, status = payload
            (summary.ran_ok if status == "ok" else summary.ran_failed).append(run_id)
        elif kind == "skipped":
            summary.skipped.append(payload[0])
    for p in procs:
        p.join()


def _stop(procs: list[Any]) -> None:
    """Interrupt the workers that are still running, wait for them, terminate stragglers."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:  # pragma: no cover - exited meanwhile
                pass
    for p in procs:
        p.join(STOP_TIMEOUT)
        if p.is_alive():  # pragma: no cover - a worker stuck outside Python
            p.terminate()
            p.join()


# ------------------------------------------------------------------------------------------------
def _worker(grid: Grid, runs: list[GridRun], out: str, cache: str, run_fn: Any,
            device: str | None, threads: int, k: int, token: str, messages: Any,
            log_level: int, started: Any = None) -> None:
    """One worker process: claim, run, report, until nothing is left (exit code 130 if
    interrupted)."""
    os.environ["PRUNEKIT_PROGRESS"] = "0"  # N progress bars on one terminal are unreadable
    logging.basicConfig(level=log_level, format=f"%(levelname)s [job {k}] %(name)s: %(message)s")
    torch.set_num_threads(threads)
    out_dir, cache_dir = Path(out), Path(cache)
    store = ResultsStore(out_dir / "results.csv")
    fn = resolve_run_fn(run_fn, grid)
    local = GridSummary(grid=grid.name, out_dir=out_dir, csv_path=store.path, runs=runs)

    def say(msg: str) -> None:
        messages.put(("say", f"[job {k}] {msg}"))

    done = 0
    try:
        while True:
            claim = _claim_next(runs, store, out_dir / ".claims", token)
            if claim is None:
                break
            run, lock = claim
            done += 1
            if started is not None:  # numbered across all workers, not per worker
                with started.get_lock():
                    started.value += 1
                    done = started.value
            try:
                run_one(run, done, len(runs), grid, out_dir, cache_dir, fn, device, store,
                         local, say)
            finally:
                lock.release()
            status = "ok" if run.run_id in local.ran_ok else "failed"
            messages.put(("result", run.run_id, status))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit
        messages.put(("say", f"[job {k}] interrupted"))
        sys.exit(130)


def _claim_next(runs: Sequence[GridRun], store: ResultsStore, claims: Path,
                token: str) -> tuple[GridRun, FileLock] | None:
    """Claim the best unfinished, unclaimed run not yet tried in this invocation."""
    finished = store.finished_run_ids()
    tried = {f.name[:-len(token) - 1] for f in claims.glob(f"*.{token}")}
    todo = [r for r in runs if r.run_id not in finished and r.run_id not in tried]
    ready = {r.pretrain_hash for r in runs if r.run_id in finished}
    busy = {r.pretrain_hash for r in todo if _claimed(claims, r.run_id)}

    def rank(r: GridRun) -> int:
        return 0 if r.pretrain_hash in ready else (2 if r.pretrain_hash in busy else 1)

    for run in sorted(todo, key=rank):  # stable: grid order within a class
        lock = FileLock(str(claims / f"{run.run_id}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # another worker runs it
        # re-check under the claim: the previous holder writes its row before releasing
        if run.run_id in store.finished_run_ids() or (claims / f"{run.run_id}.{token}").exists():
            lock.release()
            continue
        (claims / f"{run.run_id}.{token}").touch()
        return run, lock
    return None


def _claimed(claims: Path, run_id: str) -> bool:
    lock = FileLock(str(claims / f"{run_id}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False
