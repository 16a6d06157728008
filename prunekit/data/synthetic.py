"""A deterministic, learnable synthetic image classification task (for tests and smoke runs).

Each class has a smooth prototype image (random low-resolution pattern, bilinearly upsampled),
drawn from ``seed``; a sample is ``clip(prototype[y] + noise * N(0, 1), 0, 1)`` quantised to
uint8. Train and test share the prototypes (same distribution) but use different sample draws.
Labels are balanced (``i % num_classes``) then shuffled.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from prunekit.data.augment import Augment, resolve_augment
from prunekit.data.base import TensorImageDataset
from prunekit.data.spec import EPS_8_255, DataSpec
from prunekit.registry import DATASETS

__all__ = ["synthetic"]


@DATASETS.register("synthetic")
def synthetic(root: str | None = None, split: str = "train",
              augment: bool | Augment | None = None, download: bool = False,
              input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
              size: int | None = None, seed: int = 0, noise: float = 0.15,
              eps: float = EPS_8_255, dataset_name: str = "synthetic") -> TensorImageDataset:
    """Synthetic dataset; ``size`` defaults to 1024 (train) / 256 (test). ``root`` and
    ``download`` are ignored. Augmentation is off unless ``augment`` is given."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    c, h, w = (int(v) for v in input_shape)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    n = int(size) if size is not None else (1024 if split == "train" else 256)
    if min(c, h, w) < 1 or n < 1:
        raise ValueError(f"input_shape must be positive and size >= 1, got input_shape "
                         f"{[c, h, w]}, size {n}")
    g = torch.Generator().manual_seed(int(seed))
    low = torch.rand(num_classes, c, max(2, h // 8), max(2, w // 8), generator=g)
    protos = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    protos = 0.15 + 0.7 * protos                        # keep away from the clipping borders
    gs = torch.Generator().manual_seed(int(seed) * 1_000_003 + (1 if split == "train" else 2))
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gs)]
    x = protos[labels] + noise * torch.randn(n, c, h, w, generator=gs)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    spec = DataSpec(name=dataset_name, input_shape=(c, h, w), num_classes=num_classes,
                    mean=(0.5,) * c, std=(0.25,) * c, eps=eps)
    default = Augment(padding=2 if h <= 28 else 4, flip=True)
    aug = None if augment is None else resolve_augment(augment, split, default)
    return TensorImageDataset(images, labels, spec, aug)
