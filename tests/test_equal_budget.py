"""Equal training budget in every comparison grid (issue 19): each method gets the same number
of adversarial epochs after the shared dense pretraining (prune/search + fine-tune), so a
difference between methods is not a difference in training; a method that trains sparse from
scratch (``needs_pretrain`` False: Twin-Rep, FlyingBird) gets the others' whole budget,
pretraining included. (Training compute columns:
train_passes / train_cpu_s / train_epochs in the CSV.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from prunekit.bench.grid import expand
from prunekit.train.pipeline import uses_pretraining

GRIDS = Path(__file__).resolve().parents[1] / "benchmarks" / "grids"


@pytest.mark.parametrize("name", ["demo", "fmnist", "fmnist-structured", "fmnist-harp", "cifar10-cpu"])
def test_every_method_trains_the_same_epochs_after_pretraining(name: str) -> None:
    budgets: dict[tuple[int], set[int]] = {}
    for run in expand(GRIDS / f"{name}.yaml"):
        cfg = run.config
        epochs = cfg.stage("prune").epochs + cfg.stage("finetune").epochs
        if uses_pretraining(cfg):
            epochs += cfg.stage("pretrain").epochs
        key = (cfg.seed,)
        budgets.setdefault(key, set()).add(epochs)
    assert budgets and all(len(b) == 1 for b in budgets.values()), budgets
