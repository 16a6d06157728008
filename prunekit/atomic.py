"""Atomic file writes: the one place prunekit replaces a file.

Every writer goes through :func:`atomic_open`: the data goes to a fresh temporary file in the
target's folder (``.<name>.<random>.tmp``, so two writers never share one), which is flushed and
``fsync``-ed, ``os.replace``-d onto the target, and the folder is ``fsync``-ed so the rename
itself survives a power cut. A kill or an exception at any point leaves either the old file or
the new one, never a truncated mix, and no temporary file behind (on an exception). The new file
gets the permissions an ordinary ``open(path, "w")`` would give it: the existing file's mode
when it replaces one, else ``0o666`` minus the umask.

Checkpoints (``torch.save``) and per-example files (``np.savez_compressed``) write through the
file object of :func:`atomic_open`; text, JSON and bytes have one-call helpers.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "file_sha256"]

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, encoding: str | None = None
                ) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` atomically when the block ends without an
    exception (parent folders are created). ``mode`` is ``"wb"`` or ``"w"`` (text:
    ``encoding`` defaults to UTF-8)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else
                                    {"encoding": encoding or "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically; returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` by ``text`` atomically; returns the path."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: PathLike, obj: Any, **dumps: Any) -> Path:
    """Replace ``path`` by ``json.dumps(obj, **dumps)`` atomically; returns the path."""
    return atomic_write_text(path, json.dumps(obj, **dumps))


def _create_temp(path: Path) -> tuple[int, str]:
    """A new file next to ``path`` (``O_EXCL``), with the mode ``open(path, "w")`` would give."""
    try:
        keep = os.stat(path).st_mode & 0o7777
    except OSError:
        keep = None
    for _ in range(100):
        tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # minus the umask
        except FileExistsError:
            continue
        if keep is not None:
            with contextlib.suppress(OSError, AttributeError):  # no fchmod on Windows
                os.fchmod(fd, keep)
        return fd, tmp
    raise FileExistsError(f"no free temporary name next to {path}")


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (best effort: not every OS lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks): cache entries, ``pretrain.init``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
