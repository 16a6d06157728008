"""prunekit.atomic: the one atomic file writer (temporary sibling, fsync, os.replace)."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from prunekit.atomic import atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text


def _leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_writes_text_json_bytes_and_creates_parents(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "f.json"
    atomic_write_json(path, {"x": [1, 2]}, indent=1)
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    atomic_write_text(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert _leftovers(path.parent) == []


def test_torch_and_numpy_write_through_the_file_object(tmp_path) -> None:
    with atomic_open(tmp_path / "t.pt") as fh:
        torch.save({"w": torch.arange(3)}, fh)
    assert torch.equal(torch.load(tmp_path / "t.pt", weights_only=True)["w"], torch.arange(3))
    with atomic_open(tmp_path / "e.npz") as fh:
        np.savez_compressed(fh, a=np.ones(4))
    assert np.load(tmp_path / "e.npz")["a"].sum() == 4


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "w") as fh:
            fh.write("half of the new cont")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and _leftovers(tmp_path) == []
    with pytest.raises(TypeError):  # not JSON: nothing is written
        atomic_write_json(path, {"x": object()})
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_permissions_are_those_of_an_ordinary_open(tmp_path) -> None:
    umask = os.umask(0o022)
    try:
        fresh = atomic_write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644   # 0o666 minus the umask
        private = tmp_path / "private.txt"
        private.write_text("x")
        private.chmod(0o600)
        atomic_write_text(private, "y")                       # replacing keeps the mode
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(umask)


def test_bad_mode_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass
