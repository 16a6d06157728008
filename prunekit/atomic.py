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

A write that fails (disk full, a file-size limit, an I/O error; torch's ``unexpected pos`` is one
of these) is a :class:`WriteError` naming the file, the free space of its filesystem and what to
check. :func:`write_all` is the appending writer's ``os.write``: it loops over short writes and,
if the rest cannot be written, truncates the file back to where it started (no fragment stays).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Any, Iterator

from prunekit.errors import UserError, one_line

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "write_all", "WriteError", "file_sha256"]

#: torch's serializer reports a failed write as a RuntimeError with one of these in its text
_TORCH_WRITE_ERROR = re.compile(r"unexpected pos|PytorchStreamWriter|file write failed", re.I)


class WriteError(UserError, OSError):
    """A file could not be written; the message names it and the likely cause."""


def write_error(path: PathLike, exc: BaseException) -> WriteError:
    """The one-line :class:`WriteError` for a failed write of ``path``."""
    try:
        free = f"{shutil.disk_usage(Path(path).parent).free / 2**20:.0f} MB free"
    except OSError:
        free = "free space unknown"
    return WriteError(f"cannot write {path}: {one_line(exc)} ({free} on its filesystem; check "
                      f"the disk space, quota and file-size limit: df -h, ulimit -f)")


def write_all(fd: int, data: bytes, path: PathLike) -> None:
    """``os.write`` all of ``data`` to the ``O_APPEND`` file ``fd`` (short writes looped); on
    failure truncate it back to its size before and raise :class:`WriteError`."""
    start = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            if n <= 0:  # pragma: no cover - POSIX raises instead of returning 0
                raise OSError(f"wrote {len(data) - len(view)} of {len(data)} bytes")
            view = view[n:]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)  # no fragment of the failed write stays
        raise write_error(path, exc) from None

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
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, UserError) or (
                isinstance(exc, RuntimeError) and _TORCH_WRITE_ERROR.search(str(exc))):
            raise write_error(path, exc) from None
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
