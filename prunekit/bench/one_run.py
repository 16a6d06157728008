"""One run of a grid: the run function (default :func:`pipeline_run`: train, measure,
evaluate), the row it becomes (identity, provenance, metrics, or ``status=failed`` with a
one-line error and ``workdir/error.log``), appended to the results store. Shared by the serial
runner (:func:`prunekit.bench.runner.run_grid`) and the local workers (:mod:`prunekit.bench.jobs`).
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
from typing import Any, Callable, Mapping

import torch

import prunekit
from prunekit import checkpoint as ckpt
from prunekit.bench.grid import Grid, GridRun, resolve_data_root
from prunekit.bench.store import COLUMNS, ResultsStore
from prunekit.config import RunConfig
from prunekit.devices import model_device, select_device
from prunekit.errors import ConfigError
from prunekit.plugins import run_plugins
from prunekit.eval import RobustnessEvaluator
from prunekit.pruning import measure
from prunekit.pruning.base import sparsity_target_of
from prunekit.registry import PRUNERS, SEARCHERS
from prunekit.train import run_pipeline
from prunekit.train.collapse import eval_collapse
from prunekit.train.pipeline import uses_pretraining
from prunekit.train.data import build_test_set
from prunekit.train.records import append_warnings
from prunekit.train.tracking import open_tracker

__all__ = ["GridSummary", "RunFn", "pipeline_run", "provenance", "load_run_fn", "resolve_run_fn",
           "run_one", "RUN_FN_ENV", "EVAL_RESULT", "EXAMPLES_DIR", "eval_columns"]

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
    """What :func:`prunekit.bench.runner.run_grid` did."""

    grid: str
    out_dir: Path
    csv_path: Path
    runs: list[GridRun]                                  #: this shard's runs, in order
    status: dict[str, str] = field(default_factory=dict)  #: run_id -> ok|failed|pending (before)
    ran_ok: list[str] = field(default_factory=list)      #: ok rows this invocation wrote
    ran_failed: list[str] = field(default_factory=list)  #: failed rows this invocation wrote
    skipped: list[str] = field(default_factory=list)     #: already ok in the CSV
    busy: list[str] = field(default_factory=list)        #: claimed by another process
    lost: dict[str, str] = field(default_factory=dict)   #: run_id -> why no row was written
    not_run: list[str] = field(default_factory=list)     #: never started (every worker died)

    def line(self) -> str:
        """The final one-line summary: counts of the rows this invocation wrote, then every
        run that has no row from it, by name."""
        text = (f"done: {len(self.ran_ok)} ok, {len(self.ran_failed)} failed, "
                f"{len(self.skipped)} already finished")
        if self.busy:
            text += f", {len(self.busy)} run by another process ({', '.join(self.busy)})"
        if self.lost:
            text += f", {len(self.lost)} LOST (" + "; ".join(
                f"{r}: {why}" for r, why in self.lost.items()) + ")"
        if self.not_run:
            text += f", {len(self.not_run)} not started ({', '.join(self.not_run)})"
        if self.lost or self.not_run:
            text += "; re-run the same command to run them"
        return text + f" -> {self.csv_path}"

    def complete(self) -> bool:
        """True when every run of this invocation has an ok row (exit status 0)."""
        return not (self.ran_failed or self.lost or self.not_run)


# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """git sha of the prunekit source tree (``+dirty`` with local changes; empty outside a
    git checkout), prunekit and torch versions."""
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


def evaluator_for(rcfg: RunConfig, device: str, workdir: str | Path) -> RobustnessEvaluator:
    """The evaluator of a resolved run config: its attacks, certifiers, examples and seed, with
    the resumable state in ``workdir/eval_state.pt`` (the one home: bench runs and
    ``--reevaluate`` build it here)."""
    return RobustnessEvaluator(rcfg.eval.eps, attacks=tuple(rcfg.eval.attacks),
                               n_examples=rcfg.eval.n_examples,
                               batch_size=rcfg.eval.batch_size, seed=rcfg.eval.seed,
                               device=device, state_path=str(Path(workdir) / "eval_state.pt"),
                               certify=tuple(rcfg.eval.certify))


def pipeline_run(cfg: RunConfig, workdir: Path, cache_dir: Path,
                 device: str | None = None) -> dict[str, Any]:
    """The real run: ``run_pipeline`` -> ``measure`` -> ``RobustnessEvaluator.evaluate``; a
    final model at chance level gets a warning in its method summary
    (:func:`prunekit.train.collapse.eval_collapse`)."""
    with open_tracker(cfg, workdir) as tracker:  # a no-op unless cfg.track enables one
        res = run_pipeline(cfg, workdir, cache_dir=cache_dir, device=device, tracker=tracker)
        meas = measure(res.model, res.example_inputs, dense=res.dense_model)
        rcfg = cfg.resolve(res.spec.eps)
        test_set = build_test_set(rcfg)
        dev = device or str(model_device(res.model))
        ev = evaluator_for(rcfg, dev, workdir)
        result = ev.evaluate(res.model, test_set)
        res.summary = append_warnings(res.summary, eval_collapse(
            result.clean_acc, res.spec.num_classes, result.n_examples))
        row = {"params": meas.params, "macs": meas.macs, "weight_sparsity": meas.weight_sparsity,
               "macs_reduction": meas.macs_reduction, "train_s": res.train_seconds,
               "device": dev,
               "params_reduction": meas.params_reduction,  # non-zero params vs dense (measure)
               "nonzero_params": meas.nonzero_params,
               # the provenance hashes of the resolved config (eps filled in): the names of the
               # pretraining cache entry and of the model's meta, not of the unresolved grid point
               "config_hash": rcfg.config_hash(),
               "pretrain_hash": rcfg.pretrain_hash() if uses_pretraining(rcfg) else "",
               **res.compute}
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


def eval_columns(result: Any, out_dir: Path, run_id: str, dataset: str,
                 plugins: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The evaluation columns of a row from an ``EvalResult``; writes the run's per-example
    file ``out_dir/examples/<run_id>.npz`` first (atomically), so a row never names a missing
    file."""
    rel = f"{EXAMPLES_DIR}/{run_id}.npz"
    result.write_examples(out_dir / rel, run_id=run_id, dataset=dataset, split="test",
                          extra={"plugins": dict(plugins)} if plugins else None)
    cols = {k: v for k, v in result.to_row().items() if k in COLUMNS}
    cols["examples"] = rel
    return cols


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
        "config_hash": cfg.config_hash(), "pretrain_hash": cfg.pretrain_hash() if uses_pretraining(cfg) else "",
        "attacks": ";".join(cfg.eval.attacks), "variant": run.variant, "grid": grid_name,
        "plugins": json.dumps(run_plugins(cfg), sort_keys=True), **provenance(),
    }


def resolve_run_fn(run_fn: RunFn | str | None, grid: Grid) -> RunFn:
    """The run function: ``run_fn``, else ``$PRUNEKIT_BENCH_RUN_FN``, else the grid's
    ``bench.run_fn``, else :func:`pipeline_run` (a ``module:function`` string is imported)."""
    fn_spec = run_fn or os.environ.get(RUN_FN_ENV) or grid.bench.get("run_fn")
    return load_run_fn(fn_spec) if isinstance(fn_spec, str) else (fn_spec or pipeline_run)


def run_one(run: GridRun, k: int, total: int, grid: Grid, out: Path, cache: Path, fn: RunFn,
             device: str | None, store: ResultsStore, summary: GridSummary,
             say: Callable[[str], None]) -> None:
    """Run ``run`` (number ``k`` of ``total``) with ``fn`` in ``out/runs/<run_id>/``, append its
    row to ``store`` and record the outcome in ``summary``; never raises for a failed run."""
    workdir = out / "runs" / run.run_id
    workdir.mkdir(parents=True, exist_ok=True)
    for stage_ckpt in sorted(workdir.glob("*/ckpt.pt")):  # a damaged one would fail every re-run
        ckpt.drop_if_unreadable(stage_ckpt, f"{run.run_id}: that stage starts again")
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
            metrics.update(eval_columns(result, out, run.run_id, cfg.data.dataset,
                                        json.loads(row["plugins"])))
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
    if not store.append(row):  # another process wrote an ok row meanwhile: not ours
        summary.skipped.append(run.run_id)
        say(f"{msg}: finished meanwhile by another process; its row is kept")
        return
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
