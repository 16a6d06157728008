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

Ctrl-C or SIGTERM (to the parent, or SIGINT to the whole process group as a terminal sends
it): every worker stops where it is (an interrupted run writes no row; its checkpoints let the
next invocation resume it), the parent waits for them and raises :class:`GridInterrupted`, whose
one-line message the CLI prints. The CSV only ever holds complete rows.

Supervision (docs/reliability.md): a worker that dies (SIGKILL, the OOM killer, SIGTERM of the
worker alone) leaves its claimed run without a row; the parent names that run as lost in the
summary (the kernel has released its claim lock: the next invocation runs it) and the other
workers go on. Runs no worker started (every worker died) are named as not started. A worker
gets SIGTERM when the parent dies, however it dies (:func:`prunekit.bench.supervise.die_with_parent`),
so no orphan keeps appending rows.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from filelock import FileLock

from prunekit.bench.claims import Claims
from prunekit.bench.grid import Grid, GridRun
from prunekit.bench.one_run import GridSummary, resolve_run_fn, run_one
from prunekit.bench.store import ResultsStore
from prunekit.bench.supervise import FATAL, INTERRUPTED, die_with_parent, exit_cause
from prunekit.errors import one_line

__all__ = ["run_parallel", "GridInterrupted", "interrupted_message", "claim_next"]

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
    claims = Claims(out)
    store = ResultsStore(summary.csv_path)
    before = _row_stamps(store)
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    started = ctx.Value("i", 0)  # runs started by all workers: the global [k/N] count
    procs = [ctx.Process(target=_worker, name=f"prunekit-job-{k}",
                         args=(grid, list(todo), str(out), str(cache), run_fn, device,
                               threads or 1, k, claims.token, messages,
                               logging.getLogger().level, os.getpid(), started))
             for k in range(n)]
    for p in procs:
        p.start()
    try:
        fatal = _collect(procs, messages, summary, say)
        _account(todo, procs, claims, store, before, fatal, summary)
    except KeyboardInterrupt:
        _stop(procs)
        raise GridInterrupted(interrupted_message(summary)) from None
    finally:
        claims.clear()
    for run_id, why in summary.lost.items():
        say(f"{run_id}: LOST ({why}); no row was written, re-run to run it")
    return summary


def _row_stamps(store: ResultsStore) -> dict[str, tuple[str, str]]:
    """run_id -> (status, finished_at) of the CSV's rows (which rows a process wrote since)."""
    rows = store.rows() if store.path.exists() else []
    return {r["run_id"]: (r["status"], r["finished_at"]) for r in rows}


def _collect(procs: list[Any], messages: Any, summary: Any,
             say: Callable[[str], None]) -> dict[str, str]:
    """Relay the workers' messages until every worker has ended; returns run_id -> message of
    the runs whose worker stopped on an error that is not the run's own failure."""
    fatal: dict[str, str] = {}
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
            {"ok": summary.ran_ok, "failed": summary.ran_failed,
             "skipped": summary.skipped}[status].append(run_id)
        elif kind == "fatal":
            fatal[payload[0]] = payload[1]
    for p in procs:
        p.join()
    return fatal


def _account(todo: Sequence[GridRun], procs: list[Any], claims: Claims, store: ResultsStore,
             before: dict[str, tuple[str, str]], fatal: dict[str, str], summary: Any) -> None:
    """Every run of ``todo`` without a reported outcome: a row the CSV shows was written by
    this invocation (its worker died before reporting it) is counted; a claimed run without
    one is lost (with its worker's exit cause); a run nobody claimed is not started."""
    reported = set(summary.ran_ok) | set(summary.ran_failed) | set(summary.skipped)
    by_pid = {p.pid: p for p in procs}
    claimed = claims.claimed_by()
    now = _row_stamps(store)
    for run in todo:
        rid = run.run_id
        if rid in reported:
            continue
        if rid in now and now[rid] != before.get(rid):
            (summary.ran_ok if now[rid][0] == "ok" else summary.ran_failed).append(rid)
        elif rid in claimed:
            proc = by_pid.get(claimed[rid])
            why = fatal.get(rid) or (f"worker {proc.name} {exit_cause(proc.exitcode)}"
                                     if proc is not None else "its worker ended")
            summary.lost[rid] = why
        elif rid in now and now[rid][0] == "ok":
            summary.skipped.append(rid)  # finished by another process meanwhile
        else:
            summary.not_run.append(rid)


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
            log_level: int, parent: int, started: Any = None) -> None:
    """One worker process: claim, run, report, until nothing is left (exit code 130 if
    interrupted or orphaned, 3 on an error that is not a run's own failure)."""
    run = None
    try:
        die_with_parent(parent)
        os.environ["PRUNEKIT_PROGRESS"] = "0"  # N progress bars on one terminal are unreadable
        logging.basicConfig(level=log_level,
                            format=f"%(levelname)s [job {k}] %(name)s: %(message)s")
        torch.set_num_threads(threads)
        out_dir, cache_dir = Path(out), Path(cache)
        store = ResultsStore(out_dir / "results.csv")
        fn = resolve_run_fn(run_fn, grid)
        claims = Claims(out_dir, token)

        def say(msg: str) -> None:
            messages.put(("say", f"[job {k}] {msg}"))

        done = 0
        while True:
            claim = claim_next(runs, store, claims)
            if claim is None:
                break
            run, lock = claim
            done += 1
            local = GridSummary(grid=grid.name, out_dir=out_dir, csv_path=store.path, runs=runs)
            if started is not None:  # numbered across all workers, not per worker
                with started.get_lock():
                    started.value += 1
                    done = started.value
            try:
                run_one(run, done, len(runs), grid, out_dir, cache_dir, fn, device, store,
                        local, say)
            finally:
                lock.release()
            status = ("ok" if local.ran_ok else "failed" if local.ran_failed else "skipped")
            messages.put(("result", run.run_id, status))
            run = None
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _quit(messages, parent, ("say", f"[job {k}] interrupted"), INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - a results write failed: say why, in one line
        text = f"{type(exc).__name__}: {one_line(exc)}"
        _quit(messages, parent, ("fatal", run.run_id if run else "", text), FATAL)


def _quit(messages: Any, parent: int, last: tuple[Any, ...], code: int) -> None:
    """Send ``last`` (unless the parent is gone: nobody reads the queue) and exit ``code``
    without waiting on the queue's feeder thread."""
    if os.getppid() == parent:
        messages.put(last)
        messages.close()
        messages.join_thread()
    else:
        messages.cancel_join_thread()
    sys.exit(code)


def claim_next(runs: Sequence[GridRun], store: ResultsStore,
               claims: Claims) -> tuple[GridRun, FileLock] | None:
    """Claim the best unfinished, unclaimed run not yet tried in this invocation."""
    finished = store.finished_run_ids()
    tried = claims.tried()
    todo = [r for r in runs if r.run_id not in finished and r.run_id not in tried]
    ready = {r.pretrain_hash for r in runs if r.run_id in finished}
    busy = {r.pretrain_hash for r in todo if claims.busy(r.run_id)}

    def rank(r: GridRun) -> int:
        return 0 if r.pretrain_hash in ready else (2 if r.pretrain_hash in busy else 1)

    for run in sorted(todo, key=rank):  # stable: grid order within a class
        lock = claims.take(run.run_id)
        if lock is None:
            continue  # another worker runs it (or this invocation tried it)
        # re-check under the claim: the previous holder writes its row before releasing
        if run.run_id in store.finished_run_ids():
            lock.release()
            continue
        return run, lock
    return None
