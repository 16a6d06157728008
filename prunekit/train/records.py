"""What a training stage did (:class:`StageRecord`), shared by the pipeline, the pretraining
cache and the searchers' stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prunekit.train.loop import FitResult

__all__ = ["StageRecord"]


@dataclass
class StageRecord:
    """One stage: epochs trained, training seconds (summed over epochs, across resumes), the last
    epoch's averaged train stats, whether it came from the pretraining cache / was skipped."""

    epochs: int = 0
    seconds: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    skipped: bool = False

    @classmethod
    def from_fit(cls, res: FitResult) -> "StageRecord":
        return cls(epochs=res.epochs, seconds=res.seconds, last=res.last)
