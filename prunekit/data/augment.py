"""Standard training augmentation on tensors: random crop with zero padding + horizontal flip.

Equivalent to ``torchvision.transforms.RandomCrop(H, padding=p)`` followed by
``RandomHorizontalFlip()`` (the TRADES / MART / HYDRA CIFAR recipe), but done on one CHW tensor
with a single RNG draw and a slice copy, so in-memory datasets need no PIL round trip.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Augment", "resolve_augment"]


@dataclass(frozen=True)
class Augment:
    """Random shift by up to ``padding`` pixels (zero fill) and, if ``flip``, a random mirror.

    Uses the global torch RNG (each DataLoader worker is seeded by torch from the loader's
    generator; with ``num_workers=0`` seed it with ``torch.manual_seed``).
    """

    padding: int = 4
    flip: bool = True

    def __call__(self, x: Tensor) -> Tensor:
        p = self.padding
        n_shift = 2 * p + 1
        r = int(torch.randint(0, n_shift * n_shift * (2 if self.flip else 1), (1,)))
        dy, dx, fl = r % n_shift - p, (r // n_shift) % n_shift - p, r // (n_shift * n_shift)
        if dy or dx:
            h, w = x.shape[-2], x.shape[-1]
            out = torch.zeros_like(x)
            ys, ye = max(0, -dy), min(h, h - dy)
            xs, xe = max(0, -dx), min(w, w - dx)
            if ys < ye and xs < xe:
                out[..., ys:ye, xs:xe] = x[..., ys + dy:ye + dy, xs + dx:xe + dx]
            x = out
        if fl:
            x = x.flip(-1)
        return x


def resolve_augment(augment: bool | Augment | None, split: str, default: Augment | None
                    ) -> Augment | None:
    """``None`` → the dataset's default for training and nothing for test; ``True`` → the
    default (or crop 4 + flip); ``False`` → off; an :class:`Augment` is used as is."""
    if isinstance(augment, Augment):
        return augment
    if augment is None:
        return default if split == "train" else None
    if augment:
        return default if default is not None else Augment()
    return None
