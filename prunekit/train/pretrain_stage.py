"""Dense adversarial pretraining, cached under ``cfg.pretrain_hash()`` and shared by every method
that uses it (or, with ``pretrain.init``, the weights of a given file instead of training): a file lock so two processes never train one entry twice, and a verified cache
(SHA-256, config hash, finite weights) that rebuilds a broken entry instead of using it."""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from prunekit import checkpoint as ckpt
from prunekit.atomic import atomic_write_text, file_sha256
from prunekit.config import RunConfig
from prunekit.seeding import derive_seed
from prunekit.train.env import DistEnv
from prunekit.train.loop import NonFiniteWeightsError, check_finite_state, fit
from prunekit.train.optim import make_optimizer, make_scheduler
from prunekit.train.records import StageRecord
from prunekit.weights import load_into

__all__ = ["pretrain_stage", "init_from_file"]

log = logging.getLogger(__name__)


def pretrain_stage(model: nn.Module, cfg: RunConfig, loss: Any, loader: Any, pre_dir: Path,
              dist: DistEnv, common: dict[str, Any]) -> StageRecord:
    st = cfg.stage("pretrain")
    if st.init is not None:
        return init_from_file(model, st.init)
    if st.epochs == 0:
        return StageRecord(skipped=True)
    with _cache_lock(pre_dir, dist):
        done = pre_dir / "done.json"
        if done.exists():
            rec = _cached_record(pre_dir, cfg, model)
            if rec is not None:
                log.info("pretrain: using the cached model in %s", pre_dir)
                return rec
            if dist.is_main:
                ckpt.drop_if_unreadable(pre_dir / "ckpt.pt", "pretrain: training from scratch")
            dist.barrier()
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad], st)
        res = fit(model, loss, opt, make_scheduler(opt, st), loader, st.epochs,
                  checkpoint=pre_dir / "ckpt.pt", log_path=pre_dir / "log.jsonl",
                  seed=derive_seed(cfg.seed, "pretrain"), stage="pretrain", **common)
        rec = StageRecord.from_fit(res)
        if dist.is_main:
            ckpt.save(pre_dir / "model.pt", {"state_dict": model.state_dict(),
                                             "pretrain_hash": cfg.pretrain_hash()})
            info = {**dataclasses.asdict(rec), "model_sha256": file_sha256(pre_dir / "model.pt")}
            atomic_write_text(done, json.dumps(info, indent=1))
        return rec


def init_from_file(model: nn.Module, path: str) -> StageRecord:
    """``pretrain.init``: the weights of ``path`` (weights-only load, strict key and shape
    check: :func:`prunekit.weights.load_into`) replace dense pretraining; nothing is trained
    or cached (the file itself is the cache, keyed by its SHA-256 in the config hashes)."""
    load_into(model, path, f"pretrain.init {path}")
    check_finite_state(model, None, f"pretrain.init {path}")
    log.info("pretrain: weights from %s (no dense training)", path)
    return StageRecord(skipped=True, last={"init": str(path), "init_sha256": file_sha256(path)})


def _cached_record(pre_dir: Path, cfg: RunConfig, model: nn.Module) -> StageRecord | None:
    """Load a finished pretraining cache entry into ``model`` after verifying it: ``done.json``
    readable, ``model.pt`` present, matching the SHA-256 recorded in ``done.json``, loadable, of
    this ``pretrain_hash``, fitting the model and finite. A broken entry logs why and returns
    None: it is rebuilt (from its intact epoch checkpoint, else by training again)."""
    names = {f.name for f in dataclasses.fields(StageRecord)}
    weights = pre_dir / "model.pt"
    try:
        info = json.loads((pre_dir / "done.json").read_text())
        if not isinstance(info, dict):
            raise ValueError(f"done.json holds a JSON {type(info).__name__}, not an object")
        rec = StageRecord(**{k: v for k, v in info.items() if k in names})
        problem = ""
        if not weights.is_file():
            problem = "model.pt is missing"
        elif info.get("model_sha256") and info["model_sha256"] != file_sha256(weights):
            problem = "model.pt does not match the SHA-256 recorded in done.json"
        else:
            blob = ckpt.load(weights)
            if not isinstance(blob, dict) or blob.get("pretrain_hash") != cfg.pretrain_hash():
                problem = "model.pt belongs to another pretraining config"
            else:
                backup = copy.deepcopy(model.state_dict())
                try:
                    model.load_state_dict(blob["state_dict"])
                    check_finite_state(model, None, "pretrain: cached model.pt")
                except (RuntimeError, NonFiniteWeightsError):
                    model.load_state_dict(backup)
                    raise
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, ckpt.CheckpointError,
            NonFiniteWeightsError) as exc:
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if problem:
        log.warning("pretrain cache %s is broken (%s): rebuilding it", pre_dir, problem)
        return None
    rec.cached = True
    return rec




class _cache_lock:
    """File lock on a pretraining cache entry so two processes never train it twice. Under DDP
    only rank 0 locks; the others wait at a barrier until it holds the lock."""

    def __init__(self, folder: Path, dist: DistEnv) -> None:
        self.folder, self.dist, self.lock = folder, dist, None

    def __enter__(self) -> None:
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            self.lock = FileLock(str(self.folder / ".lock"))
            self.lock.acquire()
        self.dist.barrier()

    def __exit__(self, *exc: Any) -> None:
        self.dist.barrier()
        if self.lock is not None:
            self.lock.release()
