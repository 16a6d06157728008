"""Data loaders whose order is a pure function of ``(seed, epoch)`` (exact resume)."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from prunekit.seeding import derive_seed
from prunekit.train.env import DistEnv

__all__ = ["build_loader", "set_loader_epoch", "seeded_batches"]


def build_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 num_workers: int = 0, drop_last: bool = False, dist: DistEnv | None = None,
                 pin_memory: bool = False) -> DataLoader:
    """A loader for :func:`prunekit.train.fit`.

    Shuffling uses a dedicated ``torch.Generator`` that :func:`set_loader_epoch` re-seeds from
    ``(seed, epoch)`` before each epoch (worker seeds derive from it too), so the data order and
    the augmentation randomness in workers do not depend on how many epochs ran in this process.
    Under torch.distributed a ``DistributedSampler`` (seeded, ``set_epoch`` per epoch) splits the
    data; ``batch_size`` is then the per-process batch.
    """
    kw: dict[str, Any] = dict(batch_size=batch_size, num_workers=num_workers,
                              drop_last=drop_last, pin_memory=pin_memory,
                              persistent_workers=False)
    gen = torch.Generator()
    gen.manual_seed(derive_seed(seed, "loader", 0))
    if dist is not None and dist.enabled:
        sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank,
                                     shuffle=shuffle, seed=seed % 2**31, drop_last=drop_last)
        loader = DataLoader(dataset, sampler=sampler, generator=gen, **kw)
    else:
        loader = DataLoader(dataset, shuffle=shuffle, generator=gen, **kw)
    loader.prunekit_seed = seed  # type: ignore[attr-defined]
    return loader


def set_loader_epoch(loader: Any, epoch: int, seed: int | None = None) -> None:
    """Make the coming epoch's order a function of ``(seed, epoch)``: ``set_epoch`` on a
    distributed sampler, re-seed the loader's / sampler's generator otherwise."""
    seed = getattr(loader, "prunekit_seed", 0) if seed is None else seed
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    for gen in {id(g): g for g in (getattr(loader, "generator", None),
                                   getattr(sampler, "generator", None)) if g is not None}.values():
        gen.manual_seed(derive_seed(seed, "loader", epoch))
    # a DataLoader built without a generator (shuffle=True) follows the global torch RNG,
    # which fit() re-seeds from (seed, epoch): its order is still a function of (seed, epoch)


class seeded_batches:
    """The loader's batches on ``device``, in an order that is a function of ``seed`` only (a
    pruner's calibration pass, :meth:`prunekit.pruning.Pruner.calibrate`); endless: a new
    seeded epoch starts when one ends. ``batches_per_epoch`` is the loader's length."""

    def __init__(self, loader: Any, seed: int, device: torch.device) -> None:
        self.loader, self.seed, self.device = loader, seed, device
        self.batches_per_epoch = len(loader)
        self._it = self._batches()

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = 0
        while True:
            set_loader_epoch(self.loader, epoch, self.seed)
            for x, y in self.loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            epoch += 1

    def __iter__(self) -> "seeded_batches":
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return next(self._it)
