"""The two dataset classes every builder returns.

- :class:`TensorImageDataset`: all images in memory as one uint8 ``(N, C, H, W)`` tensor
  (CIFAR, SVHN, Fashion-MNIST, synthetic, decoded image folders); augmentation on tensors.
- :class:`FileImageDataset`: one image file per sample, decoded on access (Tiny-ImageNet,
  image folders) with optional decoding of everything into a cached ``.npy`` file.

Both yield ``(x, y)`` with ``x`` a float32 tensor in [0, 1] of ``spec.input_shape`` (no
normalisation: that is the model's ``Normalize`` layer) and ``y`` an ``int``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from prunekit.atomic import atomic_open
from prunekit.data.augment import Augment
from prunekit.data.spec import DataSpec

__all__ = ["TensorImageDataset", "FileImageDataset", "load_image"]

log = logging.getLogger(__name__)


class _LabelledImages(Dataset):
    """Shared tail of the image datasets: augment a uint8 CHW image, scale to [0, 1]."""

    spec: DataSpec
    labels: Tensor
    augment: Augment | None

    def _sample(self, x: Tensor, i: int) -> tuple[Tensor, int]:
        if self.augment is not None:
            x = self.augment(x)
        return x.float().div_(255.0), int(self.labels[i])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.spec.name}, n={len(self)}, "
                f"shape={self.spec.input_shape}, augment={self.augment})")


class TensorImageDataset(_LabelledImages):
    """In-memory uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)``."""

    def __init__(self, images: Tensor, labels: Tensor, spec: DataSpec,
                 augment: Augment | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 (N, C, H, W) tensor, got "
                             f"{images.dtype} {tuple(images.shape)}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.spec = spec
        self.augment = augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self._sample(self.images[i], i)


def load_image(path: str | os.PathLike, channels: int, size: int | None = None) -> Tensor:
    """Decode one image file to a uint8 ``(C, H, W)`` tensor with PIL (``channels`` 1 →
    grayscale, 3 → RGB); optionally resize to ``size x size`` (bilinear)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class FileImageDataset(_LabelledImages):
    """``samples`` = ``[(path, label), ...]``, decoded on access.

    Args:
        cache_file: if given, all images are decoded once into this ``.npy`` file (written
            atomically) and later read from it memory-mapped; much faster per epoch.
        size: resize every image to ``size x size`` (None: images must already share a size).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], spec: DataSpec,
                 augment: Augment | None = None, cache_file: str | os.PathLike | None = None,
                 size: int | None = None) -> None:
        self.samples = list(samples)
        self.labels = torch.tensor([s[1] for s in self.samples], dtype=torch.int64)
        self.spec = spec
        self.augment = augment
        self.size = size
        self._array: np.ndarray | None = None
        if cache_file is not None:
            self._array = _decoded_cache(Path(cache_file), self.samples, spec.in_channels, size)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        if self._array is not None:
            x = torch.from_numpy(np.array(self._array[i]))
        else:
            x = load_image(self.samples[i][0], self.spec.in_channels, self.size)
            if tuple(x.shape) != self.spec.input_shape:
                raise ValueError(f"{self.samples[i][0]} has shape {tuple(x.shape)}, expected "
                                 f"{self.spec.input_shape}; pass size=... to resize")
        return self._sample(x, i)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, cached={self._array is not None})"


def _decoded_cache(path: Path, samples: Sequence[tuple[str, int]], channels: int,
                   size: int | None) -> np.ndarray:
    """Decode every sample into a uint8 ``(N, C, H, W)`` ``.npy`` (atomic write), memory-map it."""
    if path.exists():
        arr = np.load(path, mmap_mode="r")
        if arr.shape[0] == len(samples):
            return arr
        log.warning("decoded cache %s has %d images, expected %d: rebuilding", path,
                    arr.shape[0], len(samples))
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("decoding %d images into %s", len(samples), path)
    first = load_image(samples[0][0], channels, size)
    arr = np.empty((len(samples), *first.shape), dtype=np.uint8)
    for i, (p, _) in enumerate(samples):
        img = first if i == 0 else load_image(p, channels, size)
        if tuple(img.shape) != tuple(first.shape):
            raise ValueError(f"{p} has shape {tuple(img.shape)}, expected {tuple(first.shape)}; "
                             f"pass size=... to resize")
        arr[i] = img.numpy()
    with atomic_open(path, "wb") as f:
        np.save(f, arr)
    return np.load(path, mmap_mode="r")
