"""Per-example results: one compressed ``.npz`` per run (docs/results-schema.md, "Per-example
results").

Keys: ``index`` (int64 ``[n]``, indices into the test split, in evaluation order), ``names``
(str ``[k]``: ``clean``, every attack in run order, ``worst``), ``flags`` (bool ``[k, n]``:
correct / robust) and ``meta`` (a 0-d string holding JSON: ``format``, ``run_id``, ``dataset``,
``split``, ``eps``, ``norm``, ``seed``, ``attacks`` -- the attacks' declared metadata --,
``reused`` and, from format 2, ``certify``: the certifiers' records). Format 2 adds the
certificates, kept apart from ``flags`` so that ``worst`` never sees them: ``cert_names`` (str
``[c]``: certificate metrics, e.g. ``ibp``, ``smooth0.25@0.5``), ``cert_flags`` (bool ``[c, n]``:
certified and correct), ``radius_names`` (str ``[r]``: certifiers) and ``radii`` (float64
``[r, n]``: per-example certified radius, ``-inf`` where abstained or wrong). Format 1 files
(no certificates) are still read. Two runs can be compared pairwise (McNemar, paired bootstrap) where their ``index``
arrays agree.

The file is written atomically (temporary file in the same folder, ``fsync``, ``os.replace``),
and read with ``allow_pickle=False``: nothing in it is ever unpickled.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from prunekit.atomic import atomic_open

__all__ = ["FORMAT", "READ_FORMATS", "KEYS", "CERT_KEYS", "CERTIFIED", "META_KEYS", "Examples", "ExamplesError", "write_examples",
           "read_examples", "is_examples_file"]

#: value of ``meta["format"]`` written by this version (2: certificates); formats read
FORMAT = 2
READ_FORMATS = (1, 2)
#: the arrays every file holds
KEYS = ("index", "names", "flags", "meta")
#: the report's prefix of a certificate metric (``certified:ibp``)
CERTIFIED = "certified:"
#: the arrays a format-2 file adds
CERT_KEYS = ("cert_names", "cert_flags", "radius_names", "radii")
#: the keys of ``meta``
META_KEYS = ("format", "run_id", "dataset", "split", "eps", "norm", "seed", "attacks", "reused")


class ExamplesError(ValueError):
    """Not a per-example file prunekit wrote, or inconsistent arrays (one-line message)."""


@dataclass(frozen=True)
class Examples:
    """The content of one per-example file.

    Attributes:
        index: int64 ``[n]``, test-split indices in evaluation order.
        names: the row names of ``flags`` (``clean``, attacks in run order, ``worst``).
        flags: bool ``[k, n]``; ``flags[i, j]``: example ``index[j]`` correct (clean) / robust
            under ``names[i]``.
        meta: the decoded ``meta`` JSON.

    Example::

        ex = read_examples("runs/fmnist/examples/trades-d2bc-....npz")
        ex["apgd-ce"].mean(), ex.index[:5], ex.meta["attacks"][0]["label"]
    """

    index: np.ndarray
    names: tuple[str, ...]
    flags: np.ndarray
    meta: dict[str, Any]
    cert_names: tuple[str, ...] = ()
    cert_flags: np.ndarray | None = None
    radius_names: tuple[str, ...] = ()
    radii: np.ndarray | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        """The bool ``[n]`` row of ``name`` (an attack row or a certificate metric);
        ``KeyError`` naming the rows on a miss."""
        if name in self.names:
            return self.flags[self.names.index(name)]
        if name.startswith(CERTIFIED):    # the report's name of a certificate metric
            name = name[len(CERTIFIED):]
        if name in self.cert_names and self.cert_flags is not None:
            return self.cert_flags[self.cert_names.index(name)]
        raise KeyError(f"no row {name!r}; rows: {', '.join(self.names + self.cert_names)}")

    def radius(self, certifier: str) -> np.ndarray:
        """The float64 ``[n]`` certified radii of ``certifier``."""
        if certifier not in self.radius_names or self.radii is None:
            raise KeyError(f"no radii of {certifier!r}; have: {', '.join(self.radius_names)}")
        return self.radii[self.radius_names.index(certifier)]

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.index.shape[0])

    @property
    def attacks(self) -> tuple[str, ...]:
        """The attack rows (without ``clean`` and ``worst``)."""
        return self.names[1:-1]


def _check(index: np.ndarray, names: Sequence[str], flags: np.ndarray,
           where: str) -> None:
    if index.ndim != 1 or index.dtype != np.int64:
        raise ExamplesError(f"{where}: 'index' must be int64 [n], got {index.dtype} "
                            f"{list(index.shape)}")
    k, n = len(names), index.shape[0]
    if flags.dtype != np.bool_ or flags.shape != (k, n):
        raise ExamplesError(f"{where}: 'flags' must be bool [{k}, {n}] (names x index), got "
                            f"{flags.dtype} {list(flags.shape)}")
    if k < 2 or names[0] != "clean" or names[-1] != "worst" or len(set(names)) != k:
        raise ExamplesError(f"{where}: 'names' must be 'clean', the attacks, 'worst' (unique), "
                            f"got {list(names)}")


def write_examples(path: str | os.PathLike, *, index: Any, names: Sequence[str], flags: Any,
                   meta: Mapping[str, Any], cert_names: Sequence[str] = (),
                   cert_flags: Any = None, radius_names: Sequence[str] = (),
                   radii: Any = None) -> Path:
    """Atomically write a per-example file (``numpy.savez_compressed``); returns its path.

    ``index``: int ``[n]``; ``names``: ``k`` row names; ``flags``: bool ``[k, n]``; ``meta``:
    JSON-serialisable, with at least :data:`META_KEYS` (``format`` is set here).
    """
    path = Path(path)
    index = np.asarray(index, dtype=np.int64)
    flags = np.asarray(flags, dtype=np.bool_)
    names = [str(n) for n in names]
    _check(index, names, flags, str(path))
    meta = {**dict(meta), "format": FORMAT}
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ExamplesError(f"{path}: meta lacks {', '.join(missing)}")
    n = index.shape[0]
    cert = np.zeros((0, n), np.bool_) if cert_flags is None else np.asarray(cert_flags, np.bool_)
    rad = np.zeros((0, n), np.float64) if radii is None else np.asarray(radii, np.float64)
    _check_cert(list(cert_names), cert, list(radius_names), rad, n, str(path))
    text = json.dumps(meta, sort_keys=False)
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, index=index, names=np.array(names, dtype=np.str_),
                            flags=flags, meta=np.array(text, dtype=np.str_),
                            cert_names=np.array(list(cert_names), dtype=np.str_),
                            cert_flags=cert,
                            radius_names=np.array(list(radius_names), dtype=np.str_), radii=rad)
    return path


def _check_cert(cert_names: list[str], cert: np.ndarray, radius_names: list[str],
                rad: np.ndarray, n: int, where: str) -> None:
    if cert.shape != (len(cert_names), n) or len(set(cert_names)) != len(cert_names):
        raise ExamplesError(f"{where}: 'cert_flags' must be bool [{len(cert_names)}, {n}] with "
                            f"unique 'cert_names', got {list(cert.shape)}")
    if rad.shape != (len(radius_names), n) or len(set(radius_names)) != len(radius_names):
        raise ExamplesError(f"{where}: 'radii' must be float [{len(radius_names)}, {n}] with "
                            f"unique 'radius_names', got {list(rad.shape)}")


def read_examples(path: str | os.PathLike) -> Examples:
    """Read and validate a per-example file; :class:`ExamplesError` (a ``ValueError``) if it is
    not one, ``FileNotFoundError`` if it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"per-example file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ExamplesError(f"{path} is not a prunekit per-example file ({_first_line(exc)})"
                            ) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ExamplesError(f"{path} is not a prunekit per-example file (a single array, "
                            "not an .npz archive)")
    with z:
        missing = [k for k in KEYS if k not in z.files]
        if missing:
            raise ExamplesError(f"{path} is not a prunekit per-example file (no "
                                f"{', '.join(missing)})")
        try:
            index, names, flags, meta_arr = (z[k] for k in KEYS)
            extra = {k: z[k] for k in CERT_KEYS if k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ExamplesError(f"{path}: unreadable arrays ({_first_line(exc)})") from None
    if names.ndim != 1 or names.dtype.kind != "U" or meta_arr.ndim != 0 or \
            meta_arr.dtype.kind != "U":
        raise ExamplesError(f"{path}: 'names' must be str [k] and 'meta' a 0-d str")
    try:
        meta = json.loads(str(meta_arr[()]))
    except ValueError:
        raise ExamplesError(f"{path}: 'meta' is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") not in READ_FORMATS:
        raise ExamplesError(f"{path}: unsupported per-example format "
                            f"{meta.get('format') if isinstance(meta, dict) else meta!r} "
                            f"(this prunekit reads formats {READ_FORMATS})")
    names_t = tuple(str(n) for n in names.tolist())
    _check(index, names_t, flags, str(path))
    if meta["format"] == 1:
        return Examples(index=index, names=names_t, flags=flags, meta=meta)
    missing = [k for k in CERT_KEYS if k not in extra]
    if missing:
        raise ExamplesError(f"{path}: format 2 file lacks {', '.join(missing)}")
    cn = tuple(str(v) for v in extra["cert_names"].tolist())
    rn = tuple(str(v) for v in extra["radius_names"].tolist())
    if extra["cert_flags"].dtype != np.bool_:
        raise ExamplesError(f"{path}: 'cert_flags' must be bool")
    _check_cert(list(cn), extra["cert_flags"], list(rn), extra["radii"], index.shape[0],
                str(path))
    return Examples(index=index, names=names_t, flags=flags, meta=meta, cert_names=cn,
                    cert_flags=extra["cert_flags"], radius_names=rn, radii=extra["radii"])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def is_examples_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is a readable per-example file of this format."""
    try:
        read_examples(path)
    except (ExamplesError, FileNotFoundError):
        return False
    return True
