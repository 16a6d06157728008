"""Shared fixtures (kept small). Owner: data/models engineer; ask before adding."""
from __future__ import annotations

import pytest
import torch

import prunekit


@pytest.fixture
def tiny_dataset() -> torch.utils.data.Dataset:
    """64 synthetic 1x28x28 images, 4 classes (deterministic, learnable, no disk access)."""
    return prunekit.DATASETS.build("synthetic", split="train", input_shape=(1, 28, 28),
                                   num_classes=4, size=64, seed=0)


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    """``vgg-small`` at width 0.25 for 1x28x28 inputs and 4 classes (a few thousand params)."""
    return prunekit.MODELS.build("vgg-small", num_classes=4, in_channels=1, width=0.25)
