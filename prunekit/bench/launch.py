"""Cluster launcher (``prunekit bench --launcher slurm``) through submitit.

The unfinished runs of the grid (after ``--set`` / ``--only``; a run is finished when the CSV has
an ``ok`` row for it) are split into array tasks: one task per dense-pretraining group (default:
a task trains its group's pretraining once, then every run of the group) or one task per run
(``group_by: run``; tasks of one group then wait on the shared pretraining-cache lock). One
submitit ``map_array`` call submits them as one SLURM job array; every task runs
:func:`run_task`, which is ``run_grid(..., run_ids=<its runs>)`` and appends to the same
``OUT/results.csv`` under its file lock (a shared filesystem with working ``flock`` is needed).
Re-running the same command submits only what is still unfinished.

Resources come from the grid's ``launcher:`` section, overridden by the command-line flags:
``partition``, ``gpus`` (per task), ``cpus`` (per task), ``time`` (minutes, ``HH:MM:SS`` or
``D-HH:MM:SS``), ``mem`` (GB), ``array_parallelism``, ``group_by`` (``pretrain`` | ``run``),
``folder`` (submitit's logs and pickles, default ``OUT/submitit``) and ``extra`` (raw submitit
parameters such as ``{slurm_account: x, slurm_qos: y}``). ``--launcher submitit-local`` runs the
same tasks as local subprocesses through submitit's LocalExecutor (how the tests exercise this).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from prunekit.bench.grid import Grid, GridRun, expand
from prunekit.bench.runner import run_grid
from prunekit.bench.store import ResultsStore
from prunekit.errors import ConfigError
from prunekit.overrides import filter_runs

__all__ = ["LaunchSettings", "LAUNCHERS", "plan_tasks", "submit", "run_task", "parse_minutes"]

log = logging.getLogger(__name__)
#: ``--launcher`` value -> submitit's cluster name
LAUNCHERS = {"slurm": "slurm", "submitit-local": "local"}
_KEYS = ("partition", "gpus", "cpus", "time", "mem", "array_parallelism", "group_by", "folder",
         "extra")


@dataclass
class LaunchSettings:
    """Resources of one array task (None: the cluster's default)."""

    partition: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    time: int = 240                       #: minutes
    mem: float | None = None              #: GB
    array_parallelism: int | None = None  #: at most this many tasks at once
    group_by: str = "pretrain"            #: pretrain | run
    folder: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, section: Mapping[str, Any] | None, flags: Mapping[str, Any]) -> "LaunchSettings":
        """The grid's ``launcher:`` section with the non-None ``flags`` on top (checked)."""
        merged = dict(section or {})
        bad = sorted(set(merged) - set(_KEYS))
        if bad:
            raise ConfigError(f"unknown launcher key(s) {', '.join(bad)}; valid: "
                              f"{', '.join(_KEYS)}")
        merged.update({k: v for k, v in flags.items() if v is not None})
        s = cls(**{k: v for k, v in merged.items() if k != "time"})
        if "time" in merged:
            s.time = parse_minutes(merged["time"])
        for name in ("gpus", "cpus", "array_parallelism"):
            v = getattr(s, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"launcher {name} must be an integer >= 0, got {v!r}")
        if s.mem is not None and (not isinstance(s.mem, (int, float)) or s.mem <= 0):
            raise ConfigError(f"launcher mem must be a number of GB > 0, got {s.mem!r}")
        if s.group_by not in ("pretrain", "run"):
            raise ConfigError(f"launcher group_by must be pretrain or run, got {s.group_by!r}")
        if not isinstance(s.extra, Mapping):
            raise ConfigError("launcher extra must be a mapping of submitit parameters")
        return s

    def parameters(self, name: str) -> dict[str, Any]:
        """submitit ``update_parameters`` keywords."""
        p: dict[str, Any] = {"name": name, "timeout_min": self.time, "tasks_per_node": 1,
                             "nodes": 1}
        if self.gpus is not None:
            p["gpus_per_node"] = self.gpus
        if self.cpus is not None:
            p["cpus_per_task"] = self.cpus
        if self.mem is not None:
            p["mem_gb"] = self.mem
        if self.partition is not None:
            p["slurm_partition"] = self.partition
        if self.array_parallelism is not None:
            p["slurm_array_parallelism"] = self.array_parallelism
        p.update(self.extra)
        return p


def parse_minutes(value: Any) -> int:
    """``90``, ``"90"``, ``"01:30:00"`` or ``"1-00:00:00"`` -> minutes (seconds round up)."""
    text = str(value).strip()
    if not isinstance(value, bool) and text.isdigit() and int(text) > 0:
        return int(text)
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d)(?::(\d\d))?", text)
    if isinstance(value, bool) or not m:
        raise ConfigError(f"launcher time must be minutes or [D-]HH:MM[:SS], got {value!r}")
    days, hours, mins, secs = (int(g) if g else 0 for g in m.groups())
    total = days * 1440 + hours * 60 + mins + (1 if secs else 0)
    if total < 1:
        raise ConfigError(f"launcher time must be at least one minute, got {value!r}")
    return total


# ------------------------------------------------------------------------------------------------
def plan_tasks(grid: Grid, out_dir: str | Path, only: Mapping[str, Sequence[Any]] | None,
               group_by: str) -> list[list[GridRun]]:
    """The unfinished runs, one list per array task (grid order)."""
    runs = filter_runs(expand(grid), only or {})
    store = ResultsStore(Path(out_dir) / "results.csv")
    finished = store.finished_run_ids() if store.path.exists() else set()
    todo = [r for r in runs if r.run_id not in finished]
    if group_by == "run":
        return [[r] for r in todo]
    groups: dict[str, list[GridRun]] = {}
    for r in todo:
        groups.setdefault(r.pretrain_hash, []).append(r)
    return list(groups.values())


def submit(grid: Grid, out_dir: str | Path, launcher: str, settings: LaunchSettings, *,
           only: Mapping[str, Sequence[Any]] | None = None, cache_dir: str | Path | None = None,
           device: str | None = None, threads: int | None = None,
           run_fn: str | None = None) -> tuple[list[list[GridRun]], list[Any]]:
    """Submit one array task per group of unfinished runs; returns ``(tasks, submitit jobs)``
    (no jobs when everything is finished)."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"unknown launcher {launcher!r}; valid: local, "
                          f"{', '.join(LAUNCHERS)}")
    tasks = plan_tasks(grid, out_dir, only, settings.group_by)
    if not tasks:
        return tasks, []
    try:
        import submitit
    except ImportError:
        raise ConfigError("--launcher needs submitit: pip install 'prunekit[cluster]'") from None
    out = Path(out_dir).resolve()
    folder = Path(settings.folder) if settings.folder else out / "submitit"
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=LAUNCHERS[launcher])
        executor.update_parameters(**settings.parameters(f"prunekit-{grid.name}"))
    except (NameError, AssertionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"--launcher {launcher}: {str(exc).strip().splitlines()[0]}") from None
    cache = str(Path(cache_dir).resolve()) if cache_dir is not None else None
    n = len(tasks)
    try:
        jobs = executor.map_array(run_task, [grid] * n, [str(out)] * n,
                                  [[r.run_id for r in t] for t in tasks], [cache] * n,
                                  [device] * n, [threads] * n, [run_fn] * n)
    except (OSError, RuntimeError) as exc:  # sbatch missing or refusing the job
        raise ConfigError(f"--launcher {launcher}: submission failed: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    log.info("submitted %d array tasks of grid %s", n, grid.name)
    return tasks, jobs


def run_task(grid: Grid, out_dir: str, run_ids: list[str], cache_dir: str | None,
             device: str | None, threads: int | None, run_fn: str | None) -> dict[str, Any]:
    """One array task: ``run_grid`` on its runs; returns what it did (submitit pickles it)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    s = run_grid(grid, out_dir, run_ids=run_ids, cache_dir=cache_dir, device=device,
                 run_fn=run_fn, progress=lambda msg: print(msg, flush=True))
    return {"ok": list(s.ran_ok), "failed": list(s.ran_failed), "skipped": list(s.skipped)}
