"""Dataset builders on synthetic / offline data, splits, augmentation, missing-data errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import prunekit
from fake_data import (FakeCIFAR, make_imagefolder, make_tinyimagenet, patch_torchvision,
                       write_idx, write_images)
from prunekit.data import (Augment, DataNotFoundError, DataSpec, kfold, make_loader, subset,
                           without_augment)
from prunekit.data.fashion_mnist import DEBIAN_DIR
from prunekit.registry import RegistryError

DATASETS = prunekit.DATASETS


def test_expected_datasets_registered() -> None:
    for name in ["cifar10", "cifar100", "svhn", "tinyimagenet", "fashion_mnist", "imagefolder",
                 "synthetic"]:
        assert name in DATASETS.names()


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(RegistryError) as err:
        DATASETS.build("cifar11")
    msg = str(err.value)
    assert "cifar11" in msg and "cifar10" in msg and "fashion_mnist" in msg and "\n" not in msg


def _check_sample(ds, n: int | None = None) -> None:
    spec: DataSpec = ds.spec
    if n is not None:
        assert len(ds) == n
    x, y = ds[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == spec.input_shape
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert isinstance(y, int) and 0 <= y < spec.num_classes


# -- Fashion-MNIST (the real Debian files) ---------------------------------------------------
_HAVE_FMNIST = (DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file()
needs_fmnist = pytest.mark.skipif(not _HAVE_FMNIST and not os.environ.get("CI"),
                                  reason=f"{DEBIAN_DIR} absent (apt-get install "
                                         f"dataset-fashion-mnist); never skipped in CI")


@needs_fmnist
def test_fashion_mnist_debian_test_split() -> None:
    ds = DATASETS.build("fashion_mnist", split="test")
    _check_sample(ds, 10_000)
    assert ds.spec.input_shape == (1, 28, 28) and ds.spec.num_classes == 10
    assert ds.spec.eps == pytest.approx(0.1)
    assert ds.augment is None
    counts = torch.bincount(ds.labels, minlength=10)
    assert counts.tolist() == [1000] * 10
    x0, _ = ds[0]
    assert torch.equal(x0, ds[0][0])       # no augmentation on test


@needs_fmnist
def test_fashion_mnist_train_defaults_crop_only() -> None:
    ds = DATASETS.build("fashion_mnist", split="train")
    assert len(ds) == 60_000 and ds.augment == Augment(padding=2, flip=False)
    assert DATASETS.build("fashion_mnist", split="train", augment=False).augment is None


def test_fashion_mnist_torchvision_layout(tmp_path: Path) -> None:
    """root/FashionMNIST/raw with (un)gzipped IDX files, written here by hand."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    write_idx(raw / "t10k-images-idx3-ubyte", imgs)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([0, 9, 4], dtype=np.uint8))
    ds = DATASETS.build("fashion_mnist", root=str(tmp_path), split="test")
    _check_sample(ds, 3)
    assert ds.labels.tolist() == [0, 9, 4]
    assert torch.equal((ds[1][0][0] * 255).round().to(torch.uint8), torch.from_numpy(imgs[1]))


def test_missing_data_error_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        DATASETS.build("fashion_mnist", root=str(tmp_path / "nope"), split="test")
    assert isinstance(err.value, FileNotFoundError) and "\n" not in str(err.value)
    with pytest.raises(DataNotFoundError, match="download=True"):
        DATASETS.build("cifar10", root=str(tmp_path / "nope"))
    with pytest.raises(DataNotFoundError, match="root="):
        DATASETS.build("cifar100")


def test_bad_split_is_value_error() -> None:
    with pytest.raises(ValueError, match="split"):
        DATASETS.build("synthetic", split="val")


# -- synthetic -------------------------------------------------------------------------------
def test_synthetic_deterministic_and_learnable() -> None:
    a = DATASETS.build("synthetic", input_shape=(3, 16, 16), num_classes=5, size=200, seed=3)
    b = DATASETS.build("synthetic", input_shape=(3, 16, 16), num_classes=5, size=200, seed=3)
    t = DATASETS.build("synthetic", split="test", input_shape=(3, 16, 16), num_classes=5,
                       size=100, seed=3)
    _check_sample(a, 200)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images[:100], t.images)
    assert a.augment is None and t.spec == a.spec
    # same distribution: nearest class mean (from train) classifies test well
    xa, xt = a.images.float(), t.images.float()
    means = torch.stack([xa[a.labels == c].mean(0) for c in range(5)])
    pred = torch.cdist(xt.flatten(1), means.flatten(1)).argmin(1)
    assert (pred == t.labels).float().mean() > 0.9


# -- splits ----------------------------------------------------------------------------------
def test_subset_seeded_and_keeps_spec(tiny_dataset) -> None:
    s1, s2, s3 = subset(tiny_dataset, 10, seed=1), subset(tiny_dataset, 10, 1), \
        subset(tiny_dataset, 10, 2)
    assert len(s1) == 10 and s1.spec == tiny_dataset.spec
    assert s1.indices == s2.indices and s1.indices != s3.indices
    assert len(set(s1.indices)) == 10
    assert subset(tiny_dataset, None, 0) is tiny_dataset
    _check_sample(s1)


@pytest.mark.parametrize("K", [2, 5, 7])
def test_kfold_disjoint_and_complete(tiny_dataset, K: int) -> None:
    n = len(tiny_dataset)
    held_all: list[int] = []
    for k in range(K):
        train, held = kfold(tiny_dataset, k, K, seed=0)
        assert train.spec == held.spec == tiny_dataset.spec
        assert set(train.indices).isdisjoint(held.indices)
        assert sorted(train.indices + held.indices) == list(range(n))
        assert abs(len(held) - n / K) < 1
        held_all += held.indices
        again = kfold(tiny_dataset, k, K, seed=0)
        assert again[1].indices == held.indices
    assert sorted(held_all) == list(range(n))
    with pytest.raises(ValueError, match="fold k"):
        kfold(tiny_dataset, K, K)


def test_kfold_held_out_has_no_augmentation(tiny_dataset) -> None:
    aug = DATASETS.build("synthetic", input_shape=(1, 28, 28), num_classes=4, size=64,
                         augment=True)
    assert aug.augment is not None
    train, held = kfold(aug, 0, 4, seed=0)
    assert train.augment is not None and held.augment is None
    assert held.dataset.images is aug.images        # storage shared, not copied
    assert without_augment(aug).augment is None and aug.augment is not None


def test_augment_crop_flip_properties() -> None:
    x = torch.arange(2 * 8 * 8, dtype=torch.uint8).reshape(2, 8, 8)
    torch.manual_seed(0)
    outs = [Augment(padding=2, flip=True)(x) for _ in range(200)]
    assert all(o.shape == x.shape and o.dtype == torch.uint8 for o in outs)
    assert any(torch.equal(o, x) for o in outs) and any(not torch.equal(o, x) for o in outs)
    assert any(torch.equal(o, x.flip(-1)) for o in outs)
    # every output is a crop of the zero-padded x or of its mirror (torchvision RandomCrop)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    crops = [c[:, i:i + 8, j:j + 8] for c in (padded, padded.flip(-1))
             for i in range(5) for j in range(5)]
    for o in outs[:50]:
        assert any(torch.equal(o, c) for c in crops)
    no_flip = [Augment(padding=1, flip=False)(x) for _ in range(100)]
    assert not any(torch.equal(o, x.flip(-1)) for o in no_flip)


def test_make_loader_seeded(tiny_dataset) -> None:
    def order(seed: int) -> list[int]:
        return torch.cat([y for _, y in make_loader(tiny_dataset, 16, shuffle=True,
                                                    seed=seed)]).tolist()

    assert order(0) == order(0) and order(0) != order(1)
    x, y = next(iter(make_loader(tiny_dataset, 16)))
    assert x.shape == (16, 1, 28, 28) and y.dtype == torch.int64


# -- torchvision-backed sets (fake torchvision classes: no files, no network) ----------------
@pytest.fixture
def fake_torchvision(monkeypatch):
    patch_torchvision(monkeypatch)


def test_cifar_and_svhn_builders(fake_torchvision, tmp_path: Path) -> None:
    tr = DATASETS.build("cifar10", root=str(tmp_path), split="train")
    te = DATASETS.build("cifar10", root=str(tmp_path), split="test")
    _check_sample(tr, 6)
    _check_sample(te, 4)
    assert tr.spec.input_shape == (3, 32, 32) and tr.spec.eps == pytest.approx(8 / 255)
    assert tr.augment == Augment(4, True) and te.augment is None
    raw = FakeCIFAR(None, train=False).data[1]                   # HWC uint8
    assert torch.equal((te[1][0] * 255).round().byte(), torch.from_numpy(raw).permute(2, 0, 1))
    c100 = DATASETS.build("cifar100", root=str(tmp_path), split="test")
    assert c100.spec.num_classes == 100
    sv = DATASETS.build("svhn", root=str(tmp_path), split="train")
    _check_sample(sv, 5)
    assert sv.augment == Augment(4, False)                         # no flip for digits
    assert len(DATASETS.build("svhn", root=str(tmp_path), split="test")) == 3
    assert len(DATASETS.build("svhn", root=str(tmp_path), split="extra")) == 2


# -- image folders ----------------------------------------------------------------------------
def test_imagefolder_directory_and_overrides(tmp_path: Path) -> None:
    make_imagefolder(tmp_path / "bugs")
    tr = DATASETS.build("imagefolder", root=str(tmp_path / "bugs"), split="train")
    te = DATASETS.build("imagefolder", root=str(tmp_path / "bugs"), split="test", eps=0.05,
                        dataset_name="bugs2", mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    _check_sample(tr, 6)
    _check_sample(te, 4)
    assert tr.spec.name == "bugs" and tr.spec.class_names == ("ant", "bee")
    assert tr.spec.input_shape == (3, 8, 8) and tr.spec.num_classes == 2
    assert tr.spec.mean[0] == pytest.approx((3 * 10 + 3 * 200) / 6 / 255, abs=1e-3)
    assert te.spec.name == "bugs2" and te.spec.eps == 0.05 and te.spec.std == (0.2,) * 3
    assert tr.augment is not None and te.augment is None
    assert te.labels.tolist() == [0, 0, 1, 1]
    assert float(te[0][0][0].mean()) == pytest.approx(10 / 255, abs=1e-3)


def test_imagefolder_targz_extracts_once(tmp_path: Path, monkeypatch) -> None:
    import tarfile

    monkeypatch.setenv("PRUNEKIT_CACHE", str(tmp_path / "cache"))
    make_imagefolder(tmp_path / "src" / "digits")
    write_images(tmp_path / "src" / "digits" / "train" / "ant", 1, 5, mode="L")  # mixed modes
    archive = tmp_path / "digits.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src" / "digits", arcname="digits")
    ds = DATASETS.build("imagefolder", root=str(archive), split="test")
    _check_sample(ds, 4)
    assert ds.spec.name == "digits"
    extracted = [p for p in (tmp_path / "cache" / "imagefolder").glob("digits-*") if p.is_dir()]
    assert len(extracted) == 1
    assert not list((tmp_path / "cache" / "imagefolder").glob(".extract-*"))
    assert len(list(extracted[0].glob("digits/.prunekit-stats-*.json"))) == 1   # mean/std kept
    # archive sources decode into a uint8 .npy cache by default; a second build reuses both
    assert len(list((tmp_path / "cache" / "tensors").glob("digits-test-*.npy"))) == 1
    again = DATASETS.build("imagefolder", root=str(archive), split="test")
    assert torch.equal(again[3][0], ds[3][0])
    assert len([p for p in (tmp_path / "cache" / "imagefolder").glob("digits-*")
                if p.is_dir()]) == 1


def test_imagefolder_missing(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="train/<class>"):
        DATASETS.build("imagefolder", root=str(tmp_path))
    with pytest.raises(DataNotFoundError, match="root="):
        DATASETS.build("imagefolder")


def test_tinyimagenet_layout(tmp_path: Path) -> None:
    base = make_tinyimagenet(tmp_path) / "tiny-imagenet-200"
    tr = DATASETS.build("tinyimagenet", root=str(tmp_path), split="train")
    te = DATASETS.build("tinyimagenet", root=str(tmp_path), split="test")
    _check_sample(tr, 4)
    _check_sample(te, 3)
    assert tr.spec.input_shape == (3, 64, 64) and tr.spec.class_names == ("goldfish", "shark")
    assert tr.labels.tolist() == [0, 0, 1, 1] and te.labels.tolist() == [1, 0, 1]
    assert tr.augment == Augment(4, True) and te.augment is None
    assert sorted(p.name for p in (base / "val" / "images").iterdir())[0] == "val_0.JPEG"
    with pytest.raises(DataNotFoundError, match="tiny-imagenet-200"):
        DATASETS.build("tinyimagenet", root=str(tmp_path / "nope"))
