"""A run's work directory: the claim that refuses to mix two training configs in one folder, and
the final files (run.json, model.pt) a finished run leaves there."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from prunekit import checkpoint as ckpt
from prunekit.atomic import atomic_write_text
from prunekit.config import RunConfig
from prunekit.config_parse import digest
from prunekit.errors import ConfigError
from prunekit.plugins import run_plugins
from prunekit.train.env import DistEnv
from prunekit.train.records import StageRecord

__all__ = ["train_key", "claim_workdir", "save_final"]


def train_key(cfg: RunConfig) -> str:
    d = cfg.resolved_for_hash()
    d.pop("eval", None)
    d.pop("device", None)
    return digest(d)


def claim_workdir(workdir: Path, cfg: RunConfig, dist: DistEnv) -> None:
    """Refuse to resume a work directory that holds a run with a different training config, and
    to write into one that holds files prunekit would overwrite but did not write (no run.json
    next to a model.pt / eval.json; a run.json that is not prunekit's).
    (Every rank passes the same barriers, whatever it finds.)"""
    marker = workdir / "run.json"
    key = train_key(cfg)
    dist.barrier()
    if not marker.exists():
        foreign = [n for n in ("model.pt", "eval.json") if (workdir / n).exists()]
        if foreign:
            raise ConfigError(f"work directory {workdir} holds {', '.join(foreign)} but no "
                              f"run.json: it is not a prunekit work directory and its files "
                              f"would be overwritten; use another --workdir")
    if dist.is_main and not marker.exists():
        atomic_write_text(marker, json.dumps({"train_key": key, "config": cfg.to_dict()}, indent=1,
                                        default=str))
    dist.barrier()
    try:
        old = json.loads(marker.read_text()).get("train_key")
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise ConfigError(f"work directory {workdir} has a run.json that prunekit did not write; "
                          f"use another --workdir") from None
    if old != key:
        raise ConfigError(f"work directory {workdir} holds a run with a different training "
                          f"config (key {old} != {key}); use another --workdir")


def save_final(workdir: Path, model: nn.Module, cfg: RunConfig,
                records: dict[str, StageRecord], spec: Any, train_seconds: float,
                pruner_info: dict[str, Any] | None = None) -> None:
    recs = {k: dataclasses.asdict(v) for k, v in records.items()}
    info = {"train_key": train_key(cfg), "config": cfg.to_dict(), "records": recs,
            "train_seconds": train_seconds, "pruner": pruner_info or {},
            "plugins": run_plugins(cfg)}
    atomic_write_text(workdir / "run.json", json.dumps(info, indent=1, default=str))
    if getattr(model, "prunekit_spec", None) is not None:
        ckpt.save_model(workdir / "model.pt", model,
                        {"dataset": cfg.data.dataset, "dataset_options": cfg.data.options,
                         "eps": cfg.eps, "model": cfg.model.name,
                         "method": cfg.method, "sparsity": cfg.sparsity, "loss": cfg.loss.name,
                         "seed": cfg.seed, "config_hash": cfg.config_hash(),
                         "train_seconds": train_seconds, "records": recs},
                        input_shape=tuple(spec.input_shape))
