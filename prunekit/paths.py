"""Guards for the paths a user names for prunekit to write (``--out``, ``--csv``, ``--state``,
``--plots``, ``--workdir``, ...): nothing is ever written over a file of another kind.

* :func:`output_dir` -- the path must be (or become) a writable directory; a file there, a parent
  that is a file, or no write permission is a one-line :class:`OutputPathError`.
* :func:`output_file` -- the path must not be a directory; an existing non-empty file is only
  overwritten or appended to if the caller's recogniser says it is of the expected kind.
* :func:`describe` -- what a file looks like (for the messages): a results CSV, a torch
  checkpoint, a pickle, JSON, text or binary data.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

from prunekit.errors import UserError

__all__ = ["OutputPathError", "output_dir", "output_file", "describe", "is_writable_dir"]

PathLike = str | os.PathLike


class OutputPathError(UserError, ValueError):
    """A path given for output cannot be used (it is a file of another kind, a directory where a
    file is expected, or not writable)."""


def describe(path: PathLike) -> str:
    """A short phrase saying what ``path`` looks like, e.g. ``"a torch checkpoint"``."""
    p = Path(path)
    if p.is_dir():
        return "a directory"
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return "an unreadable file"
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return "a torch checkpoint (zip archive)"
    if head[:1] == b"\x80":
        return "a pickle"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file"
    if "\x00" in text:
        return "a binary file"
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if first.startswith("run_id,"):
        return "a results CSV"
    if first.startswith("{"):
        return "a JSON file"
    return "a text file"


def is_writable_dir(path: PathLike) -> bool:
    """True if a file can be created in the existing directory ``path`` (probed by creating and
    removing a temporary file, so read-only mounts are detected even for root)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".prunekit-probe-", dir=path)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def output_dir(path: PathLike, what: str) -> Path:
    """Create ``path`` if needed and check that it is a writable directory.

    Args:
        path: the directory.
        what: how the user named it, for the message (e.g. ``"--out"``).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {p} is {describe(p)}, not a directory; give a directory "
                              f"path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        parent = next((q for q in p.parents if q.exists() and not q.is_dir()), p.parent)
        raise OutputPathError(f"cannot create {what} {p}: {parent} is a file; give a directory "
                              f"path") from None
    except OSError as exc:
        raise OutputPathError(f"cannot create {what} {p}: {_reason(exc)}; choose a writable "
                              f"directory") from None
    if not is_writable_dir(p):
        raise OutputPathError(f"{what} {p} is not writable; choose a writable directory")
    return p


def output_file(path: PathLike, what: str, kind: str,
                is_kind: Callable[[Path], bool] | None = None) -> Path:
    """Check that ``path`` may be written as a file of ``kind`` (its folder is created).

    Args:
        path: the file.
        what: how the user named it (``"--state"``).
        kind: the kind of file prunekit writes there (``"an evaluation state"``).
        is_kind: recogniser for an existing non-empty file; None: any existing file is refused.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{what} {p} is a directory; give a file path")
    if p.exists() and p.stat().st_size > 0 and (is_kind is None or not is_kind(p)):
        raise OutputPathError(f"refusing to overwrite {p} ({what}): it is {describe(p)}, not "
                              f"{kind}; give another path or move the file away")
    output_dir(p.parent, f"the folder of {what}")
    return p


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)
