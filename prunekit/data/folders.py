"""Folder datasets: ``imagefolder`` (a directory or a .tar.gz of class folders) and
``tinyimagenet`` (the official Tiny-ImageNet-200 layout).

Archives are extracted once into the prunekit cache (``$PRUNEKIT_CACHE`` or
``~/.cache/prunekit``): into a temporary folder first, then renamed, under a file lock, so
concurrent runs never see a half-extracted tree. ``cache_tensors=True`` decodes a split once into
a uint8 ``.npy`` next to it (memory-mapped afterwards), which makes each epoch much faster.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from prunekit.atomic import atomic_write_json
from prunekit.data.augment import Augment, resolve_augment
from prunekit.data.base import FileImageDataset, load_image
from prunekit.data.spec import EPS_8_255, DataNotFoundError, DataSpec, cache_dir
from prunekit.registry import DATASETS

__all__ = ["imagefolder", "tinyimagenet", "extract_archive", "TINYIMAGENET_SPEC"]

log = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_LAYOUT = "<root>/train/<class>/*.jpg and <root>/test/<class>/*.jpg"
TINYIMAGENET_SPEC = DataSpec(
    "tinyimagenet", (3, 64, 64), 200, mean=(0.4802, 0.4481, 0.3975),
    std=(0.2770, 0.2691, 0.2821), eps=EPS_8_255)
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _key(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _archive_stem(path: Path) -> str:
    name = path.name
    for suf in _ARCHIVE_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return path.stem


def extract_archive(archive: str | os.PathLike, cache_root: str | os.PathLike | None = None
                    ) -> Path:
    """Extract ``archive`` (tar / tar.gz) once into ``<cache>/imagefolder/<stem>-<key>`` and
    return that folder; the key changes when the archive's path, size or mtime changes."""
    from filelock import FileLock

    src = Path(archive).expanduser().resolve()
    st = src.stat()
    base = Path(cache_root) if cache_root is not None else cache_dir()
    target = base / "imagefolder" / f"{_archive_stem(src)}-{_key(src, st.st_size, st.st_mtime_ns)}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
        try:
            log.info("extracting %s into %s", src, target)
            with tarfile.open(src) as tf:
                tf.extractall(tmp, filter="data")
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _find_base(root: Path) -> Path:
    """The folder holding ``train/`` (and ``test/``): ``root`` or its single sub-folder."""
    if (root / "train").is_dir() or (root / "test").is_dir():
        return root
    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and ((subs[0] / "train").is_dir() or (subs[0] / "test").is_dir()):
        return subs[0]
    raise DataNotFoundError(f"no train/ or test/ folder in {root}: expected layout {_LAYOUT}")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)


@functools.lru_cache(maxsize=16)
def _stats(paths: tuple[str, ...], channels: int, size: int | None
           ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of (up to 1,000, evenly spaced) training images. The std is at
    least one grey level (1/255): a constant channel must not make ``Normalize`` divide by 0."""
    step = max(1, len(paths) // 1000)
    arr = np.stack([load_image(p, channels, size).numpy() for p in paths[::step]])
    x = arr.astype(np.float64) / 255.0
    return (tuple(float(v) for v in x.mean(axis=(0, 2, 3))),
            tuple(max(float(v), 1 / 255) for v in x.std(axis=(0, 2, 3))))


def _folder_stats(base: Path, classes: Sequence[str], samples: Sequence[tuple[str, int]],
                  channels: int, size: int | None, sidecar: bool
                  ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """mean/std of the training images; for extracted archives (a folder prunekit owns) the
    result is stored in a small JSON file next to ``train/`` so later builds skip the scan."""
    side = base / f".prunekit-stats-c{channels}-s{size}.json"
    if sidecar and side.is_file():
        d = json.loads(side.read_text())
        return tuple(d["mean"]), tuple(d["std"])
    train_dir = base / "train"
    paths = tuple(str(p) for c in classes if (train_dir / c).is_dir()
                  for p in _images(train_dir / c)) or tuple(s[0] for s in samples)
    mean, std = _stats(paths, channels, size)
    if sidecar:
        atomic_write_json(side, {"mean": mean, "std": std})
    return mean, std


def _tensor_cache(cache_tensors: bool, tag: str, samples: Sequence[tuple[str, int]],
                  split: str, size: int | None) -> Path | None:
    if not cache_tensors:
        return None
    key = _key(*(s[0] for s in samples[:: max(1, len(samples) // 100)]), len(samples), size)
    return cache_dir() / "tensors" / f"{tag}-{split}-{key}.npy"


@DATASETS.register("imagefolder")
def imagefolder(root: str | None = None, split: str = "train",
                augment: bool | Augment | None = None, download: bool = False,
                dataset_name: str | None = None, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None, eps: float | None = None,
                size: int | None = None, cache_tensors: bool | None = None,
                cache_root: str | None = None) -> FileImageDataset:
    """Class-per-folder images under ``train/`` and ``test/`` of a directory or a .tar(.gz).

    The spec is inferred: classes = sorted folder names of ``train/`` (so labels agree across
    splits), input shape from the first image (grayscale → 1 channel, else RGB; ``size`` resizes
    to ``size x size``), mean/std from up to 1,000 training images, eps 8/255, name = the
    archive/folder name; ``dataset_name``/``mean``/``std``/``eps`` override. Training augmentation:
    random crop (padding 4, or 2 for images of 28 px or less) + horizontal flip.
    ``cache_tensors`` (default: on for archives, off for folders) decodes the split once into a
    uint8 ``.npy`` in the cache.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if root is None:
        raise DataNotFoundError(f"imagefolder needs root=<folder or .tar.gz> with {_LAYOUT}")
    src = Path(root).expanduser()
    if not src.exists():
        raise DataNotFoundError(f"{src} does not exist: pass a folder or .tar.gz with {_LAYOUT}")
    if src.is_file():
        base = _find_base(extract_archive(src, cache_root))
        default_name = _archive_stem(src)
    else:
        base = _find_base(src)
        default_name = src.name
    folder = base / split
    if not folder.is_dir():
        raise DataNotFoundError(f"no {split}/ folder in {base}: expected layout {_LAYOUT}")
    class_root = base / "train" if (base / "train").is_dir() else folder
    classes = sorted(p.name for p in class_root.iterdir() if p.is_dir())
    if not classes:
        raise DataNotFoundError(f"no class folders in {class_root}: expected layout {_LAYOUT}")
    index = {c: i for i, c in enumerate(classes)}
    samples = [(str(p), index[c.name]) for c in sorted(folder.iterdir())
               if c.is_dir() and c.name in index for p in _images(c)]
    if not samples:
        raise DataNotFoundError(f"no images in {folder}: expected layout {_LAYOUT}")
    from PIL import Image

    with Image.open(samples[0][0]) as im:
        channels = 1 if im.mode in ("L", "1", "I", "I;16", "F") else 3
        w, h = im.size
    shape = (channels, size or h, size or w)
    if mean is None or std is None:
        m, s = _folder_stats(base, classes, samples, channels, size, sidecar=src.is_file())
        mean = m if mean is None else mean
        std = s if std is None else std
    spec = DataSpec(dataset_name or default_name, shape, len(classes), mean=tuple(mean),
                    std=tuple(std), eps=EPS_8_255 if eps is None else eps,
                    class_names=tuple(classes))
    aug = resolve_augment(augment, split, Augment(padding=2 if shape[1] <= 28 else 4, flip=True))
    if cache_tensors is None:
        cache_tensors = src.is_file()
    cache = _tensor_cache(cache_tensors, spec.name, samples, split, size)
    return FileImageDataset(samples, spec, aug, cache_file=cache, size=size)


def _tiny_base(root: str | None, download: bool) -> Path:
    hint = (f"download {TINYIMAGENET_URL}, unzip it and pass root=<folder holding "
            f"tiny-imagenet-200> (or download=True on a machine with internet)")
    if root is None:
        raise DataNotFoundError(f"tinyimagenet needs root=<folder>: {hint}")
    r = Path(root).expanduser()
    for base in (r / "tiny-imagenet-200", r):
        if (base / "train").is_dir():
            return base
    if download:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(TINYIMAGENET_URL, str(r))
        return _tiny_base(root, False)
    raise DataNotFoundError(f"Tiny-ImageNet not found in {r} (expected train/<wnid>/images/ "
                            f"and val/val_annotations.txt): {hint}")


@DATASETS.register("tinyimagenet", aliases=("tiny-imagenet", "tiny_imagenet"))
def tinyimagenet(root: str | None = None, split: str = "train",
                 augment: bool | Augment | None = None, download: bool = False,
                 eps: float | None = None, cache_tensors: bool = False) -> FileImageDataset:
    """Tiny-ImageNet-200 (64x64 RGB, 200 classes, 500 train / 50 val images per class).

    ``split="test"`` (alias ``"val"``) is the labelled validation set, read in place from
    ``val/images`` with labels from ``val/val_annotations.txt`` (no files are moved); the
    unlabelled official test set is not used. Classes are the sorted wnids (``wnids.txt`` or
    the ``train/`` folders); class names come from ``words.txt`` when present.
    """
    if split == "val":
        split = "test"
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test' (alias 'val'), got {split!r}")
    base = _tiny_base(root, download)
    wnids_file = base / "wnids.txt"
    if wnids_file.is_file():
        wnids = sorted(w.strip() for w in wnids_file.read_text().split() if w.strip())
    else:
        wnids = sorted(p.name for p in (base / "train").iterdir() if p.is_dir())
    index = {w: i for i, w in enumerate(wnids)}
    if split == "train":
        samples = [(str(p), index[w]) for w in wnids
                   for p in _images(base / "train" / w / "images")
                   if (base / "train" / w / "images").is_dir()]
    else:
        ann = base / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DataNotFoundError(f"{ann} not found: Tiny-ImageNet's val/ folder must hold "
                                    f"images/ and val_annotations.txt as in {TINYIMAGENET_URL}")
        samples = []
        for line in ann.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1] in index:
                samples.append((str(base / "val" / "images" / parts[0]), index[parts[1]]))
        samples.sort()
    if not samples:
        raise DataNotFoundError(f"no Tiny-ImageNet {split} images under {base}")
    names = wnids
    words = base / "words.txt"
    if words.is_file():
        table = dict(line.split("\t", 1) for line in words.read_text().splitlines()
                     if "\t" in line)
        names = [table.get(w, w).split(",")[0].strip() for w in wnids]
    spec = TINYIMAGENET_SPEC
    if len(wnids) != spec.num_classes:
        log.warning("Tiny-ImageNet under %s has %d classes (expected 200)", base, len(wnids))
    spec = DataSpec(spec.name, spec.input_shape, len(wnids), spec.mean, spec.std,
                    spec.eps if eps is None else eps, tuple(names))
    aug = resolve_augment(augment, split, Augment(padding=4, flip=True))
    cache = _tensor_cache(cache_tensors, "tinyimagenet", samples, split, None)
    return FileImageDataset(samples, spec, aug, cache_file=cache, size=64)
