"""Seeded subsets, K-fold splits and a seeded DataLoader; all keep the dataset's ``.spec``."""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset

__all__ = ["SpecSubset", "subset", "kfold", "without_augment", "make_loader"]


class SpecSubset(Subset):
    """``torch.utils.data.Subset`` that forwards ``.spec`` (and ``.augment``) of its dataset."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        super().__init__(dataset, list(indices))

    @property
    def spec(self) -> Any:
        return self.dataset.spec  # type: ignore[attr-defined]

    @property
    def augment(self) -> Any:
        return getattr(self.dataset, "augment", None)

    def __repr__(self) -> str:
        return f"SpecSubset({self.dataset!r}, n={len(self)})"


def _perm(n: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g).tolist()


def subset(ds: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """``n`` samples drawn without replacement by a seeded permutation (same seed → same
    samples, sorted by original index). ``n=None`` or ``n >= len(ds)`` returns ``ds`` itself."""
    total = len(ds)  # type: ignore[arg-type]
    if n is None or n >= total:
        return ds
    if n <= 0:
        raise ValueError(f"subset size must be positive, got {n}")
    return SpecSubset(ds, sorted(_perm(total, seed)[:n]))


def kfold(ds: Dataset, k: int, K: int, seed: int = 0, held_out_augment: bool = False
          ) -> tuple[Dataset, Dataset]:
    """Fold ``k`` (0-based) of ``K``: ``(train_part, held_out_part)``.

    A seeded permutation is cut into ``K`` near-equal contiguous folds; fold ``k`` is held out and
    the other ``K-1`` train. Folds are disjoint and their union is ``ds``. The held-out part is
    for validation, so it has augmentation switched off unless ``held_out_augment``.
    """
    total = len(ds)  # type: ignore[arg-type]
    if K < 2:
        raise ValueError(f"K-fold needs K >= 2, got K={K}")
    if not 0 <= k < K:
        raise ValueError(f"fold k must be in 0..{K - 1}, got {k}")
    if K > total:
        raise ValueError(f"K={K} folds but only {total} samples")
    perm = _perm(total, seed)
    bounds = [round(i * total / K) for i in range(K + 1)]
    held = sorted(perm[bounds[k]:bounds[k + 1]])
    train = sorted(perm[:bounds[k]] + perm[bounds[k + 1]:])
    held_ds = ds if held_out_augment else without_augment(ds)
    return SpecSubset(ds, train), SpecSubset(held_ds, held)


def without_augment(ds: Dataset) -> Dataset:
    """A shallow copy of ``ds`` (or of the dataset under a subset) with augmentation off; the
    image storage is shared, not copied."""
    if isinstance(ds, Subset):
        return SpecSubset(without_augment(ds.dataset), ds.indices)
    if getattr(ds, "augment", None) is None:
        return ds
    out = copy.copy(ds)
    out.augment = None  # type: ignore[attr-defined]
    return out


def make_loader(ds: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                num_workers: int = 0, drop_last: bool = False, pin_memory: bool = False,
                **kw: Any) -> DataLoader:
    """A DataLoader whose shuffling (and workers' RNG seeds) come from ``seed``.

    With ``num_workers=0``, augmentation draws from the global torch RNG: call
    ``torch.manual_seed`` for a reproducible run.
    """
    g = torch.Generator().manual_seed(int(seed))
    extra: dict[str, Any] = dict(kw)
    if num_workers > 0:
        extra.setdefault("persistent_workers", True)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g,
                      num_workers=num_workers, drop_last=drop_last, pin_memory=pin_memory,
                      **extra)
