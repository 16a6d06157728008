"""Contract tests run on every registered dataset (built-ins and ``prunekit.datasets``
entry-point plug-ins, over ``DATASETS.names()``).

What a dataset must do (docs/architecture.md, "Add a dataset"): ``build(split=...)`` returns a
map-style dataset with a ``.spec`` (DataSpec) that describes its samples: ``x`` a float32
tensor of ``spec.input_shape`` in [0, 1], ``y`` a Python int in ``[0, spec.num_classes)``; the
train and test splits share one spec (shape, classes); ``augment=False`` is deterministic and
augmentation keeps every property. Built-ins that read files run on tiny stand-ins
(tests/fake_data.py: the repository's tests/test_dataset_contract.py overrides the ``source``
fixture); a plug-in is built with its ``contract_kwargs`` (a builder attribute, default none)
and skipped, with the builder's own reason, when its data is absent (so are the file-reading
built-ins on an installed prunekit without their data).
"""
from __future__ import annotations

from typing import Any

import pytest
import torch

from prunekit import DATASETS
from prunekit.data import DataSpec

NAMES = DATASETS.names()
MAX_SAMPLES = 8


def contract_kwargs(name: str) -> dict[str, Any]:
    """The builder's own keywords for a small instance (its ``contract_kwargs``, default none)."""
    return dict(getattr(DATASETS.get(name), "contract_kwargs", {}) or {})


@pytest.fixture
def source(name: str) -> dict[str, Any]:
    """Keywords building a small instance of dataset ``name``."""
    return contract_kwargs(name)


def _build(name: str, split: str, source: dict[str, Any], **extra: Any) -> Any:
    try:
        return DATASETS.build(name, split=split, **source, **extra)
    except FileNotFoundError as exc:  # DataNotFoundError: one line saying how to get the data
        pytest.skip(f"{name}: {exc}")


def _indices(n: int) -> list[int]:
    return sorted({round(i * (n - 1) / (MAX_SAMPLES - 1)) for i in range(MAX_SAMPLES)})


def _check(ds: Any, name: str) -> None:
    spec = ds.spec
    assert isinstance(spec, DataSpec), f"{name}: .spec is a {type(spec).__name__}"
    c = spec.input_shape[0]
    assert len(spec.mean) == len(spec.std) == c and all(s > 0 for s in spec.std)
    assert 0.0 < spec.eps < 1.0 and spec.num_classes >= 2
    assert len(ds) >= 1
    for i in _indices(len(ds)):
        x, y = ds[i]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32, f"{name}[{i}]: {x!r:.40}"
        assert tuple(x.shape) == spec.input_shape, f"{name}[{i}]: {tuple(x.shape)}"
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0, f"{name}[{i}] leaves [0, 1]"
        assert isinstance(y, int) and not isinstance(y, bool), f"{name}[{i}]: label {y!r}"
        assert 0 <= y < spec.num_classes, f"{name}[{i}]: label {y} of {spec.num_classes}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("split", ["train", "test"])
def test_spec_matches_samples(name: str, split: str, source: dict[str, Any]) -> None:
    _check(_build(name, split, source), name)


@pytest.mark.parametrize("name", NAMES)
def test_splits_share_the_spec(name: str, source: dict[str, Any]) -> None:
    train = _build(name, "train", source).spec
    test = _build(name, "test", source).spec
    assert (train.input_shape, train.num_classes, train.class_names) == \
        (test.input_shape, test.num_classes, test.class_names)


@pytest.mark.parametrize("name", NAMES)
def test_augmentation_on_and_off(name: str, source: dict[str, Any]) -> None:
    if "augment" not in DATASETS.params(name).names:
        pytest.skip(f"{name} takes no augment option")
    plain = _build(name, "train", source, augment=False)
    for i in _indices(len(plain)):
        assert torch.equal(plain[i][0], plain[i][0]), f"{name}[{i}] changes without augment"
    torch.manual_seed(0)
    _check(_build(name, "train", source, augment=True), name)
