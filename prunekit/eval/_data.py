"""Deterministic batches of the first N examples of a dataset, a loader or ``(x, y)`` tensors,
with the dataset indices of the examples (for the per-example results)."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import (DataLoader, Dataset, RandomSampler, SequentialSampler, Subset,
                              TensorDataset)

__all__ = ["iter_batches", "is_shuffled", "base_indices"]


def is_shuffled(data: Any) -> bool:
    """True for a DataLoader that samples in random order."""
    return isinstance(data, DataLoader) and isinstance(getattr(data, "sampler", None),
                                                         RandomSampler)


def _as_xy(batch: Any) -> tuple[Tensor, Tensor]:
    if isinstance(batch, dict):
        x, y = batch.get("x", batch.get("image")), batch.get("y", batch.get("label"))
    else:
        x, y = batch[0], batch[1]
    return torch.as_tensor(x).float(), torch.as_tensor(y).long()


def base_indices(ds: Any, positions: Sequence[int]) -> list[int]:
    """Map positions in ``ds`` through any chain of ``Subset``\\s to indices of the dataset at
    the bottom (the test split): what the per-example file records."""
    idx = list(positions)
    while isinstance(ds, Subset):
        idx = [int(ds.indices[i]) for i in idx]
        ds = ds.dataset
    return idx


def _iterable_indices(data: Any, start: int, k: int) -> Tensor | None:
    """Indices of examples ``start .. start+k-1`` of an iterable of batches: through the dataset
    of a DataLoader with a sequential sampler, positions for a non-DataLoader iterable, None
    (unknown) for a DataLoader with another sampler (e.g. shuffling)."""
    if isinstance(data, DataLoader):
        if not isinstance(getattr(data, "sampler", None), SequentialSampler):
            return None
        return torch.tensor(base_indices(data.dataset, range(start, start + k)),
                            dtype=torch.long)
    return torch.arange(start, start + k, dtype=torch.long)


def iter_batches(data: Dataset | Iterable | tuple[Tensor, Tensor], n: int | None,
                 batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """Yield ``(x, y, index)`` batches of exactly ``batch_size`` (the last may be smaller)
    covering the first ``n`` examples (all if None) in order.

    ``data`` is a map-style Dataset (indexed 0..N-1), any iterable of ``(x, y)`` batches such as
    a DataLoader (re-chunked), or a pair of tensors. ``index`` (int64) holds the examples'
    indices in the underlying dataset (through ``Subset``\\s; positions for tensors and plain
    iterables), or is None where they cannot be known (a DataLoader that does not iterate its
    dataset in order).
    """
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        data = TensorDataset(*data)
    if isinstance(data, Dataset) and hasattr(data, "__len__") and \
            not isinstance(data, DataLoader):
        total = len(data)  # type: ignore[arg-type]
        m = total if n is None else min(n, total)
        loader: Iterable = DataLoader(Subset(data, range(m)), batch_size=batch_size,
                                      shuffle=False, num_workers=0,
                                      generator=torch.Generator())  # keep the global RNG
        index = torch.tensor(base_indices(data, range(m)), dtype=torch.long)
        start = 0
        for batch in loader:
            x, y = _as_xy(batch)
            yield x, y, index[start:start + x.shape[0]]
            start += x.shape[0]
        return
    # an iterable of batches: re-chunk to batch_size, stop after n examples
    left = n
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    have = done = 0
    for batch in data:  # type: ignore[union-attr]
        x, y = _as_xy(batch)
        if left is not None:
            x, y = x[:left], y[:left]
            left -= x.shape[0]
        xs.append(x)
        ys.append(y)
        have += x.shape[0]
        while have >= batch_size:
            cx, cy = torch.cat(xs), torch.cat(ys)
            yield cx[:batch_size], cy[:batch_size], _iterable_indices(data, done, batch_size)
            done += batch_size
            xs, ys = [cx[batch_size:]], [cy[batch_size:]]
            have -= batch_size
        if left is not None and left <= 0:
            break
    if have:
        yield torch.cat(xs), torch.cat(ys), _iterable_indices(data, done, have)
