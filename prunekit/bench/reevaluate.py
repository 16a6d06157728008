"""``prunekit bench GRID --reevaluate``: evaluation only, for grid points whose training is
already finished under another eval section (an attack added, more examples, another eps).

The eval section is part of ``config_hash`` (so of the run id), but not of the training key
(:func:`prunekit.train.workdir.train_key`, recorded in every ``runs/<id>/run.json``). A grid
point without an ``ok`` row whose training key matches a finished run directory (``run.json`` +
``model.pt``, its row ``ok``) is evaluated on that run's final ``model.pt``: its own work
directory ``runs/<new id>/`` gets only the evaluator's state and ``reevaluated_from.json``; the
source run, its checkpoints and the pretraining cache are only read. The new row copies the
source's training columns (train_s, method summary, training compute) and measures params,
MACs and sparsity on the loaded model. Points with no finished training are left alone (listed,
not trained): run the grid without ``--reevaluate`` for them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from prunekit.atomic import atomic_write_text
from prunekit.bench.grid import Grid, expand, load_grid, resolve_data_root
from prunekit.bench.one_run import EVAL_RESULT, GridSummary, evaluator_for
from prunekit.bench.runner import run_grid
from prunekit.bench.store import COLUMNS, ResultsStore
from prunekit.checkpoint import load_model
from prunekit.config import RunConfig
from prunekit.devices import select_device
from prunekit.overrides import filter_runs
from prunekit.pruning.accounting import measure_loaded, measured_columns
from prunekit.train.data import build_test_set
from prunekit.train.pipeline import uses_pretraining
from prunekit.train.workdir import train_key

__all__ = ["reevaluate_grid", "finished_trainings", "Reevaluate"]

log = logging.getLogger(__name__)

#: columns of the source row describing its training (copied, not re-measured)
TRAIN_COLUMNS = ("train_s", "method_summary", "sparsity_target", "train_epochs", "train_passes",
                 "train_cpu_s", "plugins")


def finished_trainings(out: Path) -> dict[str, Path]:
    """``train_key -> run directory`` of every finished run under ``out/runs`` (``ok`` row,
    ``run.json`` and ``model.pt`` present); the first in run-id order wins."""
    store = ResultsStore(out / "results.csv", readonly=True)
    ok = {rid for rid, st in store.status_by_run_id().items() if st == "ok"} \
        if store.path.exists() else set()
    found: dict[str, Path] = {}
    for d in sorted((out / "runs").glob("*")) if (out / "runs").is_dir() else []:
        if d.name not in ok or not (d / "model.pt").is_file() or not (d / "run.json").is_file():
            continue
        if (d / "reevaluated_from.json").exists():
            continue  # its model.pt is not there: it is someone else's
        try:
            key = json.loads((d / "run.json").read_text()).get("train_key")
        except (OSError, ValueError):
            continue
        if key:
            found.setdefault(str(key), d)
    return found


class Reevaluate:
    """The run function of a re-evaluation: ``(cfg, workdir, cache, device) -> metrics``."""

    def __init__(self, out: Path, sources: Mapping[str, Path]) -> None:
        self.out, self.sources = out, dict(sources)
        self._rows = {r["run_id"]: r for r in ResultsStore(out / "results.csv",
                                                           readonly=True).rows()}
        self._sets: dict[str, Any] = {}

    def resolved(self, cfg: RunConfig) -> tuple[RunConfig, Any]:
        """``cfg`` with the dataset's defaults (eps) filled in, and its test set."""
        ident = json.dumps([cfg.data.dataset, cfg.data.root, cfg.data.options], sort_keys=True,
                           default=str)
        if ident not in self._sets:
            self._sets[ident] = build_test_set(cfg)
        test_set = self._sets[ident]
        return cfg.resolve(test_set.spec.eps), test_set

    def source_of(self, cfg: RunConfig) -> Path | None:
        return self.sources.get(train_key(self.resolved(cfg)[0]))

    def __call__(self, cfg: RunConfig, workdir: Path, cache: Path,
                 device: str | None = None) -> dict[str, Any]:
        rcfg, test_set = self.resolved(cfg)
        src = self.sources.get(train_key(rcfg))
        if src is None:
            raise RuntimeError("no finished run with this training to re-evaluate")
        atomic_write_text(Path(workdir) / "reevaluated_from.json", json.dumps(
            {"source_run": src.name, "train_key": train_key(rcfg),
             "config": rcfg.to_dict()}, indent=1, default=str))
        dev = select_device(device or rcfg.device)
        model = load_model(src / "model.pt").to(dev).eval()
        shape = getattr(model, "prunekit_input_shape", None) or tuple(test_set.spec.input_shape)
        meas = measure_loaded(model, shape)
        ev = evaluator_for(rcfg, str(dev), workdir)   # with eval.certify (it was dropped)
        result = ev.evaluate(model, test_set)
        old = self._rows.get(src.name, {})
        row: dict[str, Any] = {k: old[k] for k in TRAIN_COLUMNS if k in COLUMNS and old.get(k)}
        row.update({k: v for k, v in measured_columns(meas).items() if k in COLUMNS},
                   device=str(dev), config_hash=rcfg.config_hash(),  # resolved, as pipeline_run
                   pretrain_hash=rcfg.pretrain_hash() if uses_pretraining(rcfg) else "")
        return {**row, EVAL_RESULT: result}


def reevaluate_grid(grid: Grid | Mapping[str, Any] | str | Path, out_dir: str | Path,
                    device: str | None = None, progress: Callable[[str], None] | None = None,
                    only: Mapping[str, Any] | None = None) -> GridSummary:
    """Evaluate every grid point that has no ``ok`` row but a finished training in
    ``out_dir`` (see the module docstring); returns the runner's summary."""
    if isinstance(grid, (str, Path)):
        grid = load_grid(grid)
    elif not isinstance(grid, Grid):
        grid = Grid.from_dict(grid)
    out = Path(out_dir)
    fn = Reevaluate(out, finished_trainings(out))
    status = ResultsStore(out / "results.csv", readonly=True).status_by_run_id()
    say = progress or (lambda _msg: None)
    todo, untrained = [], []
    for run in filter_runs(expand(grid), only or {}):
        if status.get(run.run_id) == "ok":
            continue
        cfg = run.config
        cfg.data.root = resolve_data_root(cfg.data.root, grid.path)
        (todo if fn.source_of(cfg) is not None else untrained).append(run.run_id)
    if untrained:
        say(f"--reevaluate: {len(untrained)} runs have no finished training here and are left "
            f"alone: {', '.join(untrained[:5])}{' ...' if len(untrained) > 5 else ''}")
    return run_grid(grid, out, run_fn=fn, run_ids=todo, device=device, progress=progress)
