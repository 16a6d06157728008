"""CIFAR-10, CIFAR-100 and SVHN through torchvision, held in memory as uint8 tensors.

torchvision reads (and with ``download=True`` fetches) the canonical files; prunekit then keeps
its ``.data`` array and applies augmentation on tensors. Defaults: eps 8/255; training
augmentation random crop (padding 4) + horizontal flip for CIFAR, crop only for SVHN (digits are
not mirror-symmetric). Loading SVHN needs scipy (torchvision reads .mat files with it).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prunekit.data.augment import Augment, resolve_augment
from prunekit.data.base import TensorImageDataset
from prunekit.data.spec import EPS_8_255, DataNotFoundError, DataSpec
from prunekit.registry import DATASETS

__all__ = ["cifar10", "cifar100", "svhn", "CIFAR10_SPEC", "CIFAR100_SPEC", "SVHN_SPEC"]

CIFAR10_SPEC = DataSpec(
    "cifar10", (3, 32, 32), 10, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    eps=EPS_8_255, class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                "horse", "ship", "truck"))
CIFAR100_SPEC = DataSpec(
    "cifar100", (3, 32, 32), 100, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    eps=EPS_8_255)
SVHN_SPEC = DataSpec(
    "svhn", (3, 32, 32), 10, mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
    eps=EPS_8_255, class_names=tuple(str(i) for i in range(10)))
_SVHN_SPLITS = {"train": "train", "test": "test", "extra": "extra"}


def _open(cls_name: str, what: str, root: str | None, download: bool, **kw: Any) -> Any:
    from torchvision import datasets as tvd

    if root is None:
        raise DataNotFoundError(f"{what} needs root=<folder>; pass download=True on a machine "
                                f"with internet to fetch it there")
    try:
        return getattr(tvd, cls_name)(root, download=download, **kw)
    except RuntimeError as exc:
        if "not found" in str(exc).lower() or "download" in str(exc).lower():
            raise DataNotFoundError(f"{what} not found under {root}: pass download=True on a "
                                    f"machine with internet, or copy torchvision's files "
                                    f"there") from exc
        raise


def _cifar(name: str, cls_name: str, spec: DataSpec, root: str | None, split: str,
           augment: bool | Augment | None, download: bool, eps: float | None) -> TensorImageDataset:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ds = _open(cls_name, name, root, download, train=(split == "train"))
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    classes = getattr(ds, "classes", None)
    if classes and len(classes) == spec.num_classes:
        spec = spec.with_overrides(class_names=tuple(classes))
    aug = resolve_augment(augment, split, Augment(padding=4, flip=True))
    return TensorImageDataset(images, labels, spec.with_overrides(eps=eps), aug)


@DATASETS.register("cifar10", aliases=("cifar-10",))
def cifar10(root: str | None = None, split: str = "train", augment: bool | Augment | None = None,
            download: bool = False, eps: float | None = None) -> TensorImageDataset:
    """CIFAR-10 (torchvision ``CIFAR10`` files under ``root``)."""
    return _cifar("CIFAR-10", "CIFAR10", CIFAR10_SPEC, root, split, augment, download, eps)


@DATASETS.register("cifar100", aliases=("cifar-100",))
def cifar100(root: str | None = None, split: str = "train", augment: bool | Augment | None = None,
             download: bool = False, eps: float | None = None) -> TensorImageDataset:
    """CIFAR-100 (torchvision ``CIFAR100`` files under ``root``), 100 fine labels."""
    return _cifar("CIFAR-100", "CIFAR100", CIFAR100_SPEC, root, split, augment, download, eps)


@DATASETS.register("svhn")
def svhn(root: str | None = None, split: str = "train", augment: bool | Augment | None = None,
         download: bool = False, eps: float | None = None) -> TensorImageDataset:
    """SVHN cropped digits (torchvision ``SVHN``); splits train / test / extra; label 10 of the
    original .mat files is already mapped to 0 by torchvision."""
    if split not in _SVHN_SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SVHN_SPLITS)}, got {split!r}")
    ds = _open("SVHN", "SVHN", root, download, split=_SVHN_SPLITS[split])
    images = torch.from_numpy(np.ascontiguousarray(ds.data))       # already (N, 3, 32, 32)
    labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.int64)
    aug = resolve_augment(augment, "train" if split != "test" else "test",
                          Augment(padding=4, flip=False))
    return TensorImageDataset(images, labels, SVHN_SPEC.with_overrides(eps=eps), aug)
