"""DataSpec (what a model and an attack need to know about a dataset) and the missing-data error."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["DataSpec", "DataNotFoundError", "cache_dir", "EPS_8_255"]

#: the standard CIFAR / SVHN / Tiny-ImageNet L-inf radius (TRADES uses 0.031 ~ 8/255)
EPS_8_255 = 8 / 255


@dataclass(frozen=True)
class DataSpec:
    """Static description of a dataset.

    Attributes:
        name: dataset name (registry name, or the archive/folder name for ``imagefolder``).
        input_shape: ``(C, H, W)`` of one sample.
        num_classes: number of labels ``0..num_classes-1``.
        mean, std: per-channel statistics for the model's ``Normalize`` layer (data stays in
            [0, 1]; normalisation is inside the model).
        eps: default L-inf attack radius in [0, 1] pixel units (8/255 for CIFAR-like, SVHN,
            Tiny-ImageNet; 0.1 for Fashion-MNIST).
        class_names: human-readable label names (length ``num_classes``).
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    eps: float = EPS_8_255
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "class_names", tuple(str(v) for v in self.class_names))
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {self.input_shape}")
        c = self.input_shape[0]
        if len(self.mean) != c or len(self.std) != c:
            raise ValueError(f"mean/std need {c} values (one per channel)")
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(i) for i in range(self.num_classes)))
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    def with_overrides(self, **kw: Any) -> "DataSpec":
        """A copy with the given (non-None) fields replaced."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "mean": list(self.mean), "std": list(self.std),
                "eps": self.eps, "class_names": list(self.class_names)}


class DataNotFoundError(FileNotFoundError):
    """A dataset is not on disk; ``str()`` is one line saying how to get it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def cache_dir() -> Path:
    """prunekit's cache folder: ``$PRUNEKIT_CACHE`` or ``~/.cache/prunekit``."""
    env = os.environ.get("PRUNEKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prunekit"
