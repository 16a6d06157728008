"""Fashion-MNIST (Xiao et al., 2017): 60k/10k 28x28 grayscale images, 10 classes.

Reads the IDX files directly (gzip + numpy, about 0.3 s for the training set) from
- ``root=None``: the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist);
- ``root``: that folder itself, or torchvision's layout ``root/FashionMNIST/raw`` (gzipped or
  not); ``download=True`` lets torchvision fetch the files there first.

Default eps 0.1 (the usual Fashion-MNIST L-inf radius); default training augmentation: random
crop with padding 2, no flip (mirrored clothing is plausible, but we keep MNIST-family practice).
"""
from __future__ import annotations

import functools
import gzip
import logging
from pathlib import Path

import numpy as np
import torch

from prunekit.data.augment import Augment, resolve_augment
from prunekit.data.base import TensorImageDataset
from prunekit.data.spec import DataNotFoundError, DataSpec
from prunekit.registry import DATASETS

__all__ = ["fashion_mnist", "read_idx", "DEBIAN_DIR", "FASHION_MNIST_SPEC"]

log = logging.getLogger(__name__)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_SPEC = DataSpec(
    name="fashion_mnist", input_shape=(1, 28, 28), num_classes=10, mean=(0.2860,),
    std=(0.3530,), eps=0.1,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"))
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@functools.lru_cache(maxsize=8)
def read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic ``00 00 <type> <ndim>``, big-endian dims."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=4 + 4 * ndim)
    arr = arr.reshape(dims)
    arr.setflags(write=False)
    return arr


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        p = folder / name
        if p.is_file():
            return p
    return None


def _locate(root: str | None, split: str, download: bool) -> tuple[Path, Path]:
    img_stem, lbl_stem = _FILES[split]
    if root is None:
        candidates = [DEBIAN_DIR]
    else:
        r = Path(root).expanduser()
        candidates = [r, r / "FashionMNIST" / "raw", r / "fashion-mnist"]
    for folder in candidates:
        img, lbl = _find(folder, img_stem), _find(folder, lbl_stem)
        if img is not None and lbl is not None:
            return img, lbl
    if download and root is not None:
        from torchvision import datasets as tvd

        log.info("downloading Fashion-MNIST into %s", root)
        tvd.FashionMNIST(root, train=(split == "train"), download=True)
        return _locate(root, split, download=False)
    where = str(DEBIAN_DIR) if root is None else f"{root} (or {root}/FashionMNIST/raw)"
    raise DataNotFoundError(
        f"Fashion-MNIST {split} files ({img_stem}[.gz]) not found in {where}: run "
        f"`apt-get install dataset-fashion-mnist`, or pass root=<dir> with download=True on a "
        f"machine with internet")


@DATASETS.register("fashion_mnist", aliases=("fashion-mnist", "fmnist"))
def fashion_mnist(root: str | None = None, split: str = "train",
                  augment: bool | Augment | None = None, download: bool = False,
                  eps: float | None = None) -> TensorImageDataset:
    """Fashion-MNIST as an in-memory uint8 dataset (see module docstring for where it looks)."""
    split = _check_split(split)
    img_path, lbl_path = _locate(root, split, download)
    images = read_idx(str(img_path))
    labels = read_idx(str(lbl_path))
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"unexpected IDX shapes {images.shape} / {labels.shape} in {img_path}")
    x = torch.from_numpy(images.copy()).unsqueeze(1)          # (N, 1, 28, 28) uint8
    y = torch.from_numpy(labels.astype(np.int64))
    spec = FASHION_MNIST_SPEC.with_overrides(eps=eps)
    aug = resolve_augment(augment, split, Augment(padding=2, flip=False))
    return TensorImageDataset(x, y, spec, aug)


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split
