"""A tiny procedural dataset as a prunekit dataset plug-in (one function).

``data: {dataset: stripes, size: 64, period: 4}``: grayscale images of horizontal (class 0) or
vertical (class 1) stripes at a random phase, plus noise; ``size`` and ``period`` are this
dataset's own options of the ``data:`` config section. The dataset contract tests
(``python -m pytest --pyargs prunekit.testing -k stripes``) run on it once its entry point is installed.
"""
from __future__ import annotations

import torch

from prunekit.data import Augment, DataSpec, TensorImageDataset
from prunekit.data.augment import resolve_augment


def stripes(root: str | None = None, split: str = "train", augment: bool | None = None,
            download: bool = False, size: int | None = None, period: int = 4,
            seed: int = 0) -> TensorImageDataset:
    """``size`` images (default 256 train / 64 test) of 1x16x16 stripes; ``root`` and
    ``download`` are ignored (nothing is read)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if period < 2:
        raise ValueError(f"period must be >= 2 pixels, got {period}")
    n = size if size is not None else (256 if split == "train" else 64)
    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    labels = torch.arange(n) % 2
    phase = torch.randint(0, period, (n, 1, 1), generator=g)
    pos = torch.arange(16)
    half = period // 2
    rows = ((pos.view(1, 16, 1) + phase) // half) % 2   # horizontal stripes
    cols = ((pos.view(1, 1, 16) + phase) // half) % 2   # vertical stripes
    img = torch.where(labels.view(n, 1, 1) == 0, rows.expand(n, 16, 16), cols.expand(n, 16, 16))
    x = 0.2 + 0.6 * img.float() + 0.05 * torch.randn(n, 16, 16, generator=g)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    spec = DataSpec("stripes", (1, 16, 16), 2, mean=(0.5,), std=(0.3,), eps=0.1,
                    class_names=("horizontal", "vertical"))
    return TensorImageDataset(images, labels, spec,
                              resolve_augment(augment, split, Augment(padding=2, flip=False)))
