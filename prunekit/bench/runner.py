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

import copy
import dataclasses
import datetime as _dt
import functools
import importlib
import json
import logging
import math
import os
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from prunekit.bench.grid import Grid, GridRun, expand, load_grid, resolve_data_root, shard_runs
from prunekit.bench.store import COLUMNS, ResultsStore
from prunekit.config import RunConfig
from prunekit.devices import model_device, select_device
from prunekit.errors import ConfigError
from prunekit.overrides import filter_runs
from prunekit.paths import output_dir

__all__ = ["run_grid", "GridSummary", "RunFn", "pipeline_run", "provenance", "load_run_fn",
           "RUN_FN_ENV", "EVAL_RESULT", "EXAMPLES_DIR", "eval_columns"]

log = logging.getLogger(__name__)

#: ``run_fn(cfg, workdir, cache_dir, device) -> metrics``; ``cfg`` has ``data.root`` resolved,
#: ``device`` is None (the config decides) or an override such as ``"cpu"``. The returned mapping
#: may hold any result column (docs/results-schema.md), typically params, macs,
#: weight_sparsity, macs_reduction, train_s, device, and either the evaluation columns
#: (clean/pgd/apgd/aa/worst_acc, eps, n_eval, eval_s, checks, robust_acc) or, under
#: :data:`EVAL_RESULT`, the ``EvalResult`` itself: the runner then fills the evaluation columns
#: from it and writes ``examples/<run_id>.npz`` before the row.
RunFn = Callable[[RunConfig, Path, Path, "str | None"], Mapping[str, Any]]

#: key of a run function's result holding its :class:`prunekit.eval.EvalResult`
EVAL_RESULT = "eval_result"
#: folder (beside results.csv) of the per-example files
EXAMPLES_DIR = "examples"

#: environment variable naming a replacement run function (``module:function``); used by the
#: harness tests to run grids with a fake, instant run function in a subprocess
RUN_FN_ENV = "PRUNEKIT_BENCH_RUN_FN"


@dataclass
class GridSummary:
    """What :func:`run_grid` did."""

    grid: str
    out_dir: Path
    csv_path: Path
    runs: list[GridRun]                                  #: this shard's runs, in order
    status: dict[str, str] = field(default_factory=dict)  #: run_id -> ok|failed|pending (before)
    ran_ok: list[str] = field(default_factory=list)
    ran_failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     #: already ok in the CSV


# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """git sha of the prunekit source tree (``+dirty`` with local changes; empty outside a
    git checkout), prunekit and torch versions."""
    import torch

    import prunekit

    src = Path(prunekit.__file__).resolve().parent
    sha = ""
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain",
                                "--untracked-files=no", "--", "."], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        if sha and dirty:
            sha += "+dirty"
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return {"git_sha": sha, "prunekit_version": prunekit.__version__,
            "torch_version": torch.__version__}


def pipeline_run(cfg: RunConfig, workdir: Path, cache_dir: Path,
                 device: str | None = None) -> dict[str, Any]:
    """The real run: ``run_pipeline`` -> ``measure`` -> ``RobustnessEvaluator.evaluate``."""
    from prunekit.eval import RobustnessEvaluator
    from prunekit.pruning import measure
    from prunekit.train import run_pipeline

    from prunekit.train.tracking import open_tracker

    with open_tracker(cfg, workdir) as tracker:  # a no-op unless cfg.track enables one
        res = run_pipeline(cfg, workdir, cache_dir=cache_dir, device=device, tracker=tracker)
        meas = measure(res.model, res.example_inputs, dense=res.dense_model)
        rcfg = cfg.resolve(res.spec.eps)
        test_set = _test_set(rcfg)
        dev = device or str(model_device(res.model))
        ev = RobustnessEvaluator(rcfg.eval.eps, attacks=tuple(rcfg.eval.attacks),
                                 n_examples=rcfg.eval.n_examples,
                                 batch_size=rcfg.eval.batch_size, seed=rcfg.eval.seed,
                                 device=dev, state_path=str(Path(workdir) / "eval_state.pt"))
        result = ev.evaluate(res.model, test_set)
        row = {"params": meas.params, "macs": meas.macs, "weight_sparsity": meas.weight_sparsity,
               "macs_reduction": meas.macs_reduction, "train_s": res.train_seconds,
               "device": dev,
               "params_reduction": meas.params_reduction}  # non-zero params vs dense (measure)
        tracker.log_final({**result.to_row(), **row})
    return {**row, EVAL_RESULT: result, **_method_columns(res)}


def _method_columns(res: Any) -> dict[str, Any]:
    """``method_summary`` / ``sparsity_target`` from the method; a searcher's model is not a
    reduction of a dense one, so its sparsity / reduction columns stay empty."""
    cols: dict[str, Any] = {"method_summary": json.dumps(res.summary, sort_keys=True,
                                                         default=str)}
    if res.sparsity_target:
        cols["sparsity_target"] = res.sparsity_target
    if res.family == "searcher":
        cols.update(weight_sparsity=None, macs_reduction=None, params_reduction=None)
    return cols


def eval_columns(result: Any, out_dir: Path, run_id: str, dataset: str) -> dict[str, Any]:
    """The evaluation columns of a row from an ``EvalResult``; writes the run's per-example
    file ``out_dir/examples/<run_id>.npz`` first (atomically), so a row never names a missing
    file."""
    rel = f"{EXAMPLES_DIR}/{run_id}.npz"
    result.write_examples(out_dir / rel, run_id=run_id, dataset=dataset, split="test")
    cols = {k: v for k, v in result.to_row().items() if k in COLUMNS}
    cols["examples"] = rel
    return cols


def _test_set(cfg: RunConfig) -> Any:
    from prunekit.train.data import build_test_set

    return build_test_set(cfg)


def load_run_fn(spec: str) -> RunFn:
    """``"package.module:function"`` (or ``package.module.function``) -> the function."""
    mod, sep, name = spec.partition(":")
    if not sep:
        mod, _, name = spec.rpartition(".")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot load run function {spec!r}: {exc}") from None
    if not callable(fn):
        raise ConfigError(f"run function {spec!r} is not callable")
    return fn


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0] if msg else ''}".strip().rstrip(":")
    return text[:500]


def _base_row(run: GridRun, grid_name: str) -> dict[str, Any]:
    cfg = run.config
    try:
        from prunekit.pruning.base import sparsity_target_of
        from prunekit.registry import PRUNERS, SEARCHERS

        if cfg.method in SEARCHERS:
            cls = SEARCHERS.get(cfg.method)
            target = getattr(cls, "sparsity_target", "") or ""
        else:
            cls = PRUNERS.get(cfg.method)
            target = sparsity_target_of(cls)
        gran = getattr(cls, "granularity", "")
    except Exception:  # noqa: BLE001 - a row must still be written
        gran, target = "", ""
    return {
        "run_id": run.run_id, "method": cfg.method, "granularity": gran,
        "sparsity_target": target,
        "loss": cfg.loss.name, "dataset": cfg.data.dataset, "model": cfg.model.name,
        "target_sparsity": cfg.sparsity, "seed": cfg.seed, "fold": cfg.data.fold,
        "eps": cfg.eval.eps if cfg.eval.eps is not None else cfg.loss.eps,
        "config_hash": cfg.config_hash(), "pretrain_hash": cfg.pretrain_hash(),
        "attacks": ";".join(cfg.eval.attacks), "variant": run.variant, "grid": grid_name,
        **provenance(),
    }


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
    if dry_run:
        return summary

    fn = resolve_run_fn(run_fn, grid)
    output_dir(out, "--out")
    store.check_appendable()  # a foreign or v1 results.csv is refused before any training
    cache = output_dir(cache_dir if cache_dir is not None else out / "cache", "--cache")
    if jobs > 1:
        from prunekit.bench.jobs import run_parallel

        return run_parallel(grid, mine, summary, jobs, run_fn=run_fn, cache=cache,
                            device=device, threads=threads, say=say)
    todo = [r for r in mine if summary.status[r.run_id] != "ok"]
    summary.skipped = [r.run_id for r in mine if summary.status[r.run_id] == "ok"]
    say(f"grid {grid.name}: {len(mine)} runs in this shard, {len(summary.skipped)} finished, "
        f"{len(todo)} to run -> {store.path}")
    try:
        for k, run in enumerate(todo, 1):
            if run.run_id in store.finished_run_ids():  # finished meanwhile by another process
                summary.skipped.append(run.run_id)
                continue
            _run_one(run, k, len(todo), grid, out, cache, fn, device, store, summary, say)
    except KeyboardInterrupt:  # the run in progress writes no row; the CSV stays consistent
        from prunekit.bench.jobs import GridInterrupted, interrupted_message

        raise GridInterrupted(interrupted_message(summary)) from None
    return summary


def resolve_run_fn(run_fn: RunFn | str | None, grid: Grid) -> RunFn:
    """The run function: ``run_fn``, else ``$PRUNEKIT_BENCH_RUN_FN``, else the grid's
    ``bench.run_fn``, else :func:`pipeline_run` (a ``module:function`` string is imported)."""
    fn_spec = run_fn or os.environ.get(RUN_FN_ENV) or grid.bench.get("run_fn")
    return load_run_fn(fn_spec) if isinstance(fn_spec, str) else (fn_spec or pipeline_run)


def _run_one(run: GridRun, k: int, total: int, grid: Grid, out: Path, cache: Path, fn: RunFn,
             device: str | None, store: ResultsStore, summary: GridSummary,
             say: Callable[[str], None]) -> None:
    workdir = out / "runs" / run.run_id
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(run.config)
    cfg.data = dataclasses.replace(cfg.data, root=resolve_data_root(cfg.data.root, grid.path))
    msg = f"[{k}/{total}] {run.run_id}"
    say(f"{msg}: start")
    log.info("%s: start (workdir %s)", msg, workdir)
    row = _base_row(run, grid.name)
    t0 = time.perf_counter()
    try:
        metrics = dict(fn(cfg, workdir, cache, device))
        result = metrics.pop(EVAL_RESULT, None)
        if result is not None:
            metrics.update(eval_columns(result, out, run.run_id, cfg.data.dataset))
        unknown = set(metrics) - set(COLUMNS)
        if unknown:
            log.warning("%s: run function returned unknown columns %s (dropped)", msg,
                        sorted(unknown))
        row.update({k2: v for k2, v in metrics.items() if k2 in COLUMNS})
        row["status"] = "ok"
        row["error"] = ""
    except Exception as exc:  # noqa: BLE001 - one failed run must not stop the grid
        row["status"] = "failed"
        row["error"] = _one_line(exc)
        (workdir / "error.log").write_text(traceback.format_exc())
        log.error("%s: failed: %s", msg, row["error"])
    row.setdefault("device", _safe_device(cfg, device))
    row["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    store.append(row)
    (summary.ran_ok if row["status"] == "ok" else summary.ran_failed).append(run.run_id)
    took = time.perf_counter() - t0
    if row["status"] == "ok":
        say(f"{msg}: ok in {took:.0f}s" + _brief(row))
    else:
        say(f"{msg}: FAILED in {took:.0f}s: {row['error']}")


def _safe_device(cfg: RunConfig, override: str | None) -> str:
    """The device a failed run was meant for (as the name, if it cannot be resolved here)."""
    try:
        return str(select_device(override or cfg.device))
    except ConfigError:
        return override or cfg.device


def _brief(row: Mapping[str, Any]) -> str:
    parts = []
    for key, label in (("clean_acc", "clean"), ("pgd_acc", "pgd"), ("aa_acc", "aa")):
        v = row.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):  # NaN: the attack did not run
            parts.append(f"{label} {v:.3f}")
    return (" (" + ", ".join(parts) + ")") if parts else ""
