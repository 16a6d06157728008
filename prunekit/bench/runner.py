"""Run a grid: every unfinished run of (a shard of) the grid, one CSV row each.

For each run: ``workdir = out_dir/runs/<run_id>/``; the run function trains (the pipeline
resumes every stage from the checkpoints in ``workdir`` and shares dense pretraining through
``cache_dir``), measures and evaluates (the evaluator's resumable state also lives in
``workdir``); the runner adds identity and provenance columns and appends the row to
``out_dir/results.csv``. An exception (including the training loop's NaN-loss error) becomes a
``status=failed`` row with a one-line error (full traceback in ``workdir/error.log``) and the grid
goes on. A re-run skips ``ok`` run_ids and retries failed ones.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from prunekit.bench.claims import Claims
from prunekit.bench.grid import Grid, GridRun, expand, load_grid, shard_runs
from prunekit.bench.jobs import GridInterrupted, interrupted_message, run_parallel
from prunekit.bench.one_run import (EVAL_RESULT, EXAMPLES_DIR, RUN_FN_ENV, GridSummary, RunFn,
                                    eval_columns, load_run_fn, pipeline_run, provenance,
                                    resolve_run_fn, run_one)
from prunekit.bench.store import ResultsStore
from prunekit.devices import select_device
from prunekit.errors import ConfigError
from prunekit.overrides import filter_runs
from prunekit.paths import output_dir

# the one-run names are public here too (docs/bench.md: prunekit.bench.runner.pipeline_run)
__all__ = ["run_grid", "GridSummary", "RunFn", "pipeline_run", "provenance", "load_run_fn",
           "RUN_FN_ENV", "EVAL_RESULT", "EXAMPLES_DIR", "eval_columns", "check_devices"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
def run_grid(grid: Grid | Mapping[str, Any] | str | Path, out_dir: str | Path,
             shard: tuple[int, int] | None = None, dry_run: bool = False,
             run_fn: RunFn | str | None = None, cache_dir: str | Path | None = None,
             shard_by: str | None = None, device: str | None = None,
             progress: Callable[[str], None] | None = None,
             only: Mapping[str, Sequence[Any]] | None = None,
             run_ids: Collection[str] | None = None, jobs: int = 1,
             threads: int | None = None) -> GridSummary:
    """Run (or, with ``dry_run``, only plan) the unfinished runs of ``grid``'s shard.

    Args:
        grid: a :class:`Grid`, a grid mapping or a YAML path. Every point is validated first.
        out_dir: holds ``results.csv``, ``runs/<run_id>/`` and, by default, ``cache/``.
        shard: ``(i, n)``: only this shard's runs (see :func:`shard_runs`).
        run_fn: the function running one config (default :func:`pipeline_run`); a
            ``module:function`` string is imported. Precedence: this argument, then
            ``$PRUNEKIT_BENCH_RUN_FN``, then the grid's ``bench.run_fn``.
        cache_dir: shared dense-pretraining cache (default ``out_dir/cache``).
        shard_by: ``run`` (default) or ``pretrain`` (whole pretraining groups per shard).
        device: override every config's ``device``.
        progress: called with one human-readable line per event (the CLI prints them).
        only: ``{dotted config key: accepted values}`` (``--only``): run that subset, renumbered
            before sharding (:func:`prunekit.overrides.filter_runs`).
        run_ids: run only these run ids (what a launcher's array task gets).
        jobs: with ``jobs > 1``, that many local worker processes share the runs
            (:func:`prunekit.bench.jobs.run_parallel`; ``threads`` torch threads each, default 1).
    """
    if isinstance(grid, (str, Path)):
        grid = load_grid(grid)
    elif not isinstance(grid, Grid):
        grid = Grid.from_dict(grid)
    runs = filter_runs(expand(grid), only or {})  # validates every point before anything runs
    if run_ids is not None:
        wanted = set(run_ids)
        runs = [r for r in runs if r.run_id in wanted]
    mine = shard_runs(runs, shard, by=shard_by or grid.bench.get("shard_by", "run"))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        output_dir(out, "--out")  # the one-line "is a file, not a directory" error
    store = ResultsStore(out / "results.csv", readonly=dry_run)
    before = store.status_by_run_id()
    summary = GridSummary(grid=grid.name, out_dir=out, csv_path=store.path, runs=mine,
                          status={r.run_id: before.get(r.run_id, "pending") for r in mine})
    say = progress or (lambda _msg: None)
    check_devices(mine, device)  # known now: refuse before the first run, also at --dry-run
    fn = resolve_run_fn(run_fn, grid)  # a bad bench.run_fn too
    if dry_run:
        return summary

    output_dir(out, "--out")
    store.check_appendable()  # a foreign or v1 results.csv is refused before any training
    cache = output_dir(cache_dir if cache_dir is not None else out / "cache", "--cache")
    if jobs > 1:
        return run_parallel(grid, mine, summary, jobs, run_fn=run_fn, cache=cache,
                            device=device, threads=threads, say=say)
    todo = [r for r in mine if summary.status[r.run_id] != "ok"]
    summary.skipped = [r.run_id for r in mine if summary.status[r.run_id] == "ok"]
    say(f"grid {grid.name}: {len(mine)} runs in this shard, {len(summary.skipped)} finished, "
        f"{len(todo)} to run -> {store.path}")
    claims = Claims(out)  # the same claims as --jobs workers: never two benches on one run
    try:
        for k, run in enumerate(todo, 1):
            lock = claims.take(run.run_id)
            if lock is None:
                summary.busy.append(run.run_id)
                say(f"[{k}/{len(todo)}] {run.run_id}: claimed by another process; left to it")
                continue
            try:
                if run.run_id in store.finished_run_ids():  # finished meanwhile elsewhere
                    summary.skipped.append(run.run_id)
                    continue
                run_one(run, k, len(todo), grid, out, cache, fn, device, store, summary, say)
            finally:
                lock.release()
    except KeyboardInterrupt:  # the run in progress writes no row; the CSV stays consistent
        raise GridInterrupted(interrupted_message(summary)) from None
    finally:
        claims.clear()
    return summary


def check_devices(runs: Sequence[GridRun], device: str | None) -> None:
    """Fail now, with one line, if a run's device (or the ``--device`` override) cannot be used
    on this machine (``cuda`` without CUDA): known before anything runs."""
    for name in sorted({device or r.config.device for r in runs}):
        try:
            select_device(name)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (every run of this grid would fail; pass --device cpu "
                              f"or run it on a machine with a GPU)") from None
