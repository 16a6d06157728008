"""Test helper: tiny stand-ins for the files the dataset builders read (image folders,
Tiny-ImageNet's layout, Fashion-MNIST IDX files) and for torchvision's CIFAR / SVHN classes, so
every builder runs on disk-free or tmp data; plus ``tiny_source(name, ...)``: the keywords that
build a small instance of a built-in dataset (used by tests/test_dataset_contract.py)."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prunekit.data.fashion_mnist import DEBIAN_DIR


def write_images(folder: Path, n: int, color: int, size: int = 8, mode: str = "RGB") -> None:
    """``n`` PNGs ``000.png``... of one colour (RGB: (color, 10 i, 0))."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new(mode, (size, size), color=(color, i * 10, 0) if mode == "RGB" else color
                  ).save(folder / f"{i:03d}.png")


def make_imagefolder(base: Path) -> Path:
    """``base/{train,test}/{ant,bee}/*.png`` (3 + 3 train, 2 + 2 test, 8x8 RGB)."""
    for split, n in (("train", 3), ("test", 2)):
        write_images(base / split / "ant", n, 10)
        write_images(base / split / "bee", n, 200)
    return base


def make_tinyimagenet(root: Path) -> Path:
    """``root/tiny-imagenet-200`` with 2 wnids (n02, n01), 2 train images each, 3 val images
    annotated n02, n01, n02 (64x64); returns ``root``."""
    base = root / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tshark\n")
    for j, w in enumerate(wnids):
        write_images(base / "train" / w / "images", 2, 50 * (j + 1), size=64)
    write_images(base / "val" / "images", 3, 100, size=64)
    for i, p in enumerate(sorted((base / "val" / "images").iterdir())):
        p.rename(p.with_name(f"val_{i}.JPEG"))
    (base / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn02\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t1\t9\t9\n"
        "val_2.JPEG\tn02\t0\t0\t5\t5\n")
    return root


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (uint8; gzipped if ``path`` ends in .gz)."""
    head = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                   for d in array.shape)
    data = head + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_fashion_mnist(root: Path, n: int = 6) -> Path:
    """``root/FashionMNIST/raw`` with ``n`` gzipped images and labels per split."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    return root


class FakeCIFAR:
    """torchvision ``CIFAR10`` / ``CIFAR100`` stand-in: 6 train / 4 test random HWC images."""

    def __init__(self, root: Any, train: bool = True, download: bool = False) -> None:
        n = 6 if train else 4
        self.data = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = [i % 10 for i in range(n)]
        self.classes = [f"c{i}" for i in range(10)]
        self.args = (root, train, download)


class FakeSVHN:
    """torchvision ``SVHN`` stand-in: 5 / 3 / 2 CHW images for train / test / extra."""

    def __init__(self, root: Any, split: str = "train", download: bool = False) -> None:
        n = {"train": 5, "test": 3, "extra": 2}[split]
        self.data = np.full((n, 3, 32, 32), 7, dtype=np.uint8)
        self.labels = np.arange(n) % 10


def patch_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace torchvision's CIFAR10 / CIFAR100 / SVHN classes by the fakes above."""
    from torchvision import datasets as tvd

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR)
    monkeypatch.setattr(tvd, "CIFAR100", FakeCIFAR)
    monkeypatch.setattr(tvd, "SVHN", FakeSVHN)


def tiny_source(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> dict[str, Any] | None:
    """Builder keywords for a small instance of built-in dataset ``name`` (real Fashion-MNIST
    when the Debian package is installed), or None if this helper does not know ``name``."""
    if name == "synthetic":
        return {"size": 32}
    if name == "fashion_mnist":
        if (DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file():
            return {}
        return {"root": str(make_fashion_mnist(tmp_path))}
    if name == "imagefolder":
        return {"root": str(make_imagefolder(tmp_path / "bugs"))}
    if name == "tinyimagenet":
        return {"root": str(make_tinyimagenet(tmp_path))}
    if name in ("cifar10", "cifar100", "svhn"):
        patch_torchvision(monkeypatch)
        return {"root": str(tmp_path)}
    return None
