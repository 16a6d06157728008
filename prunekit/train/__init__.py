"""Training: the one loop (:func:`fit`), the three-stage pipeline (:func:`run_pipeline`),
optimizers / schedules, seeded loaders, DDP helpers (docs/training.md)."""
from __future__ import annotations

from prunekit.devices import select_device  # public here too (docs/training.md)
from prunekit.seeding import derive_seed, seed_everything  # public here too (docs/training.md)
from prunekit.train.data import build_test_set, build_train_set
from prunekit.train.env import DistEnv, dist_env, init_distributed
from prunekit.train.loader import build_loader, set_loader_epoch
from prunekit.train.loop import FitResult, NonFiniteLossError, NonFiniteWeightsError, fit, \
    progress_enabled
from prunekit.train.optim import make_optimizer, make_scheduler
from prunekit.train.pipeline import PipelineResult, StageRecord, run_pipeline

__all__ = [
    "fit", "FitResult", "NonFiniteLossError", "NonFiniteWeightsError", "run_pipeline",
    "PipelineResult", "StageRecord",
    "make_optimizer", "make_scheduler", "build_loader", "set_loader_epoch", "build_train_set",
    "build_test_set", "select_device", "seed_everything", "derive_seed", "DistEnv", "dist_env",
    "init_distributed", "progress_enabled",
]
