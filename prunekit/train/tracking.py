"""Experiment tracking: per-epoch training stats and final metrics to TensorBoard
(``torch.utils.tensorboard``) and/or Weights & Biases (offline by default), both off by default
(config section ``track``, docs/config.md; docs/training.md, "Experiment tracking").

One :class:`Tracker` per run: :func:`open_tracker` returns a :class:`NullTracker` when nothing is
enabled or on a non-zero DDP rank. ``fit`` calls :meth:`Tracker.log_epoch` after every epoch
(scalars ``<stage>/<stat>`` at step = epoch); the callers that evaluate (``prunekit bench``'s run
function, ``prunekit train``) call :meth:`Tracker.log_final` with the result columns
(``final/<metric>``, and W&B's run summary). Both packages are optional imports: enabling one
that is not installed is a one-line :class:`~prunekit.config.ConfigError` before training.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping

from prunekit.errors import ConfigError

__all__ = ["Tracker", "NullTracker", "TensorBoardTracker", "WandbTracker", "open_tracker"]

log = logging.getLogger(__name__)


def _scalars(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``values`` (bools and strings are dropped)."""
    out = {}
    for k, v in values.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


class Tracker:
    """The interface (a tracker that records nothing)."""

    def log_epoch(self, stage: str, epoch: int, record: Mapping[str, Any]) -> None:
        """One epoch's averaged training stats (``fit``'s JSONL record)."""

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        """The run's final metrics (evaluation and size columns)."""

    def close(self) -> None:
        """Flush and close (idempotent)."""

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class NullTracker(Tracker):
    """Tracking disabled."""


class TensorBoardTracker(Tracker):
    """Event files in ``log_dir`` (``tensorboard --logdir <dir>``)."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("track.tensorboard needs the tensorboard package: pip install "
                              "'prunekit[track]'") from None
        self.log_dir = Path(log_dir)
        self.writer: Any = SummaryWriter(log_dir=str(self.log_dir))

    def log_epoch(self, stage: str, epoch: int, record: Mapping[str, Any]) -> None:
        for k, v in _scalars(record).items():
            if k != "epoch":
                self.writer.add_scalar(f"{stage}/{k}", v, global_step=epoch)
        self.writer.flush()

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        for k, v in _scalars(metrics).items():
            self.writer.add_scalar(f"final/{k}", v, global_step=0)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WandbTracker(Tracker):
    """A Weights & Biases run (``mode="offline"``: files under ``dir/wandb/``, uploaded later
    with ``wandb sync``). Uses only the documented API: ``wandb.init``, ``run.log``,
    ``run.summary.update``, ``run.finish``."""

    def __init__(self, dir: str | os.PathLike, project: str, name: str, mode: str,
                 config: Mapping[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("track.wandb needs the wandb package: pip install "
                              "'prunekit[track]'") from None
        Path(dir).mkdir(parents=True, exist_ok=True)
        self.run: Any = wandb.init(project=project, name=name, dir=str(dir), mode=mode,
                                   config=dict(config), reinit="finish_previous")
        self._step = 0

    def log_epoch(self, stage: str, epoch: int, record: Mapping[str, Any]) -> None:
        values = {f"{stage}/{k}": v for k, v in _scalars(record).items() if k != "epoch"}
        self.run.log({**values, f"{stage}/epoch": epoch}, step=self._step)
        self._step += 1

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        final = _scalars(metrics)
        self.run.log({f"final/{k}": v for k, v in final.items()}, step=self._step)
        self._step += 1
        self.run.summary.update(final)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class _Multi(Tracker):
    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def log_epoch(self, stage: str, epoch: int, record: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.log_epoch(stage, epoch, record)

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.log_final(metrics)

    def close(self) -> None:
        for t in self.trackers:
            t.close()


def open_tracker(cfg: Any, workdir: str | os.PathLike, is_main: bool = True) -> Tracker:
    """The tracker a :class:`~prunekit.config.RunConfig`'s ``track`` section asks for
    (``<track.dir or workdir/tracking>/tensorboard`` and ``.../wandb``)."""
    tr = cfg.track
    if not is_main or not (tr.tensorboard or tr.wandb):
        return NullTracker()
    base = Path(tr.dir) if tr.dir else Path(workdir) / "tracking"
    trackers: list[Tracker] = []
    try:
        if tr.tensorboard:
            trackers.append(TensorBoardTracker(base / "tensorboard"))
        if tr.wandb:
            trackers.append(WandbTracker(base, tr.wandb_project, cfg.name, tr.wandb_mode,
                                         cfg.to_dict()))
    except BaseException:
        for t in trackers:
            t.close()
        raise
    log.info("tracking to %s", base)
    return trackers[0] if len(trackers) == 1 else _Multi(trackers)
