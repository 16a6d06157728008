"""Shared model pieces: input normalisation, width rounding, the rebuild spec, and the one
definition of a model's stem (first ``nn.Conv2d``) and classifier (last ``nn.Linear``).

Every prunekit model takes inputs in [0, 1]; its first child is :class:`Normalize`, so attacks,
eps and clamping all live in pixel space (as in the TRADES / MART code, whose inputs are
``ToTensor()`` only).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

__all__ = ["Normalize", "scale_width", "set_spec", "model_spec", "find_stem", "find_classifier",
           "stem_and_classifier", "classifier_of"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with mean/std as (non-trainable) buffers.

    ``mean=None`` / ``std=None`` mean 0 / 1 (identity), i.e. no normalisation at all.
    The buffers are saved in ``state_dict`` so a checkpoint carries its own normalisation;
    ``persistent=False`` leaves them out (the published layouts of
    :mod:`prunekit.models.published`, whose state dicts must load unchanged: their mean/std
    live in the builder spec instead).
    """

    def __init__(self, mean: Sequence[float] | None, std: Sequence[float] | None,
                 channels: int, persistent: bool = True) -> None:
        super().__init__()
        m = _per_channel(mean, channels, 0.0, "mean")
        s = _per_channel(std, channels, 1.0, "std")
        if (s <= 0).any():
            raise ValueError(f"std must be positive, got {s.tolist()}")
        self.register_buffer("mean", m.view(1, channels, 1, 1), persistent=persistent)
        self.register_buffer("std", s.view(1, channels, 1, 1), persistent=persistent)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def _per_channel(v: Sequence[float] | float | None, channels: int, default: float,
                 what: str) -> Tensor:
    if v is None:
        return torch.full((channels,), default)
    t = torch.as_tensor(v, dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.expand(channels).clone()
    if t.numel() != channels:
        raise ValueError(f"{what} has {t.numel()} values but the model has {channels} input "
                         f"channels")
    return t


def scale_width(channels: int, width: float) -> int:
    """Channel count after the width multiplier: ``max(1, floor(channels * width + 0.5))``
    (round half up)."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, int(math.floor(channels * width + 0.5)))


def set_spec(model: nn.Module, name: str, num_classes: int, in_channels: int, width: float,
             mean: Sequence[float] | None, std: Sequence[float] | None,
             **extra: Any) -> nn.Module:
    """Record the builder arguments on ``model.prunekit_spec`` (JSON-able) so checkpoints can
    rebuild the dense model with ``MODELS.build(**spec)``."""
    spec: dict[str, Any] = {
        "name": name, "num_classes": int(num_classes), "in_channels": int(in_channels),
        "width": float(width),
        "mean": None if mean is None else [float(v) for v in torch.as_tensor(mean).flatten()],
        "std": None if std is None else [float(v) for v in torch.as_tensor(std).flatten()],
    }
    spec.update(extra)
    model.prunekit_spec = spec  # type: ignore[assignment]
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """A copy of the builder spec recorded on ``model`` (raises ValueError if there is none).

    ``MODELS.build(**model_spec(model))`` rebuilds the dense architecture (use
    :func:`build_from_spec`)."""
    spec = getattr(model, "prunekit_spec", None)
    if spec is None:
        raise ValueError(f"{type(model).__name__} has no prunekit_spec; build it with "
                         f"prunekit.MODELS.build(...)")
    return dict(spec)


# -- the stem and the classifier (DESIGN.md conventions) --------------------------------------
def find_stem(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """``(name, module)`` of the stem: the first ``nn.Conv2d`` of ``model`` (None if none)."""
    return next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def find_classifier(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """``(name, module)`` of the classifier: the last ``nn.Linear`` of ``model`` (None if none)."""
    last = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = (n, m)
    return last


def stem_and_classifier(model: nn.Module) -> tuple[str, str]:
    """Names of the stem (first ``nn.Conv2d``) and the classifier (last ``nn.Linear``), ``""``
    for one the model does not have: what pruning leaves alone by default."""
    stem, classifier = find_stem(model), find_classifier(model)
    return (stem[0] if stem else ""), (classifier[0] if classifier else "")


def classifier_of(model: nn.Module) -> nn.Linear:
    """The classifier: the last ``nn.Linear`` of ``model`` (named ``classifier`` in prunekit's
    own models)."""
    found = find_classifier(model)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return found[1]
