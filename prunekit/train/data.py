"""Training / test sets for a :class:`~prunekit.config.RunConfig` (subset and K-fold applied)."""
from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from prunekit.data import kfold, subset
from prunekit.sections import build_dataset

__all__ = ["build_train_set", "build_test_set"]


def _build(cfg: Any, split: str, augment: bool | None) -> Dataset:
    return build_dataset(cfg.data, split, augment)


def build_train_set(cfg: Any) -> tuple[Dataset, Any]:
    """The training set and its DataSpec: ``data.train_subset`` examples (seeded by ``cfg.seed``)
    and, with ``data.folds``, the K-1 training folds of fold ``data.fold``."""
    d = cfg.data
    ds = _build(cfg, "train", d.augment)
    spec = ds.spec
    if d.folds is not None:
        ds, _ = kfold(ds, d.fold, d.folds, cfg.seed)
    if d.train_subset is not None and d.train_subset < len(ds):
        ds = subset(ds, d.train_subset, cfg.seed)
    return ds, spec


def build_test_set(cfg: Any) -> Dataset:
    """The test split (no augmentation); the evaluator takes its first ``eval.n_examples``."""
    return _build(cfg, "test", False)
