"""What a training stage did (:class:`StageRecord`), shared by the pipeline, the pretraining
cache and the searchers' stages, and the run's training-compute totals (:func:`compute_columns`,
the CSV columns ``train_epochs`` / ``train_passes`` / ``train_cpu_s``)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from prunekit.train.collapse import stats_collapse
from prunekit.train.compute import sum_or_none
from prunekit.train.loop import FitResult

__all__ = ["StageRecord", "compute_columns", "stage_warnings", "append_warnings"]


@dataclass
class StageRecord:
    """One stage: epochs trained, training seconds (summed over epochs, across resumes), the last
    epoch's averaged train stats, whether it came from the pretraining cache / was skipped, the
    measured compute -- ``passes`` (example-weighted forward passes) and ``cpu_s`` (process CPU
    seconds), None when unknown (a cache entry or checkpoint from before they were counted) --
    and the warnings its loss raised (e.g. catastrophic overfitting)."""

    epochs: int = 0
    seconds: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    skipped: bool = False
    passes: int | None = None
    cpu_s: float | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_fit(cls, res: FitResult) -> "StageRecord":
        return cls(epochs=res.epochs, seconds=res.seconds, last=res.last, passes=res.passes,
                   cpu_s=res.cpu_s, warnings=res.warnings)


def compute_columns(records: Mapping[str, StageRecord]) -> dict[str, Any]:
    """``train_epochs`` (JSON ``{stage: epochs}``, a skipped stage 0), ``train_passes`` and
    ``train_cpu_s`` (sums over the stages that trained; None if any of them is unknown)."""
    ran = [r for r in records.values() if not r.skipped]
    passes = sum_or_none(r.passes for r in ran)
    cpu = sum_or_none(r.cpu_s for r in ran)
    return {"train_epochs": json.dumps({k: (0 if r.skipped else int(r.epochs))
                                        for k, r in records.items()}),
            "train_passes": None if passes is None else int(passes),
            "train_cpu_s": None if cpu is None else round(cpu, 3)}


def stage_warnings(records: Mapping[str, StageRecord], num_classes: int | None = None,
                   n_train: int | None = None) -> list[str]:
    """Every stage's warnings, prefixed with the stage (``"pretrain: ..."``); with
    ``num_classes`` and ``n_train`` (examples per epoch) also each trained stage's chance-level
    collapse (:func:`prunekit.train.collapse.stats_collapse` on its last epoch's stats)."""
    out = []
    for k, r in records.items():
        warns = list(r.warnings)
        if num_classes and n_train and not r.skipped and r.last:
            warns += [w for w in stats_collapse(r.last, num_classes, n_train) if w not in warns]
        out += [f"{k}: {w}" for w in warns]
    return out


def append_warnings(summary: Mapping[str, Any], warns: list[str]) -> dict[str, Any]:
    """``summary`` (a method summary) with ``warns`` appended to its ``warnings`` list."""
    if not warns:
        return dict(summary)
    return {**summary, "warnings": list(summary.get("warnings") or []) + list(warns)}
