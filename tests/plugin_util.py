"""Test helpers for plug-ins: 'install' a distribution the way ``importlib.metadata`` sees one
-- a ``*.dist-info`` folder with METADATA and entry_points.txt in a folder on ``sys.path`` --
without pip and without touching the venv; let a registry rescan its entry points; run a
contract test file in a fresh process that sees the plug-in."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import pytest

from prunekit.registry import Registry


def fake_dist(site: Path, name: str, entry_points: Mapping[str, Mapping[str, str]],
              version: str = "0.1.0") -> Path:
    """Write ``site/<name>-<version>.dist-info`` declaring ``{group: {ep_name: "mod:attr"}}``;
    returns ``site`` (put it on ``sys.path`` / PYTHONPATH)."""
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    text = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
                   for group, eps in entry_points.items())
    (dist / "entry_points.txt").write_text(text)
    return site


def rescan(monkeypatch: pytest.MonkeyPatch, registry: Registry) -> None:
    """Let ``registry`` rescan its entry-point group (what a fresh process does on first use);
    its entries are restored after the test."""
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
    monkeypatch.setattr(registry, "_plugins_loaded", False)


def run_tests(test_file: Path, select: str, pythonpath: Sequence[str | Path]) -> str:
    """Run ``pytest test_file -k select`` in a fresh process that sees ``pythonpath`` (the
    'installed' plug-in); returns its output, asserting that it passed."""
    path = [*(str(p) for p in pythonpath), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(test_file), "-k", select], env=env, capture_output=True,
                          text=True, cwd=test_file.parents[1], timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


def passed(output: str) -> int:
    """The number of passed tests in a pytest summary line."""
    m = re.search(r"(\d+) passed", output)
    return int(m.group(1)) if m else 0


def build_wheel(project: Path, out: Path) -> tuple[list[str], str]:
    """Build ``project``'s wheel offline into ``out`` (not installed); returns its file names
    and its entry_points.txt."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(project)], check=True)
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        return names, zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()


def install_example(monkeypatch: pytest.MonkeyPatch, site: Path, example: Path, name: str,
                    entry_points: Mapping[str, Mapping[str, str]],
                    *registries: Registry) -> Path:
    """'Install' the example package in folder ``example`` (its dist-info in ``site``, both on
    sys.path) and let ``registries`` rescan; everything is undone after the test."""
    fake_dist(site, name, entry_points)
    monkeypatch.syspath_prepend(str(example))
    monkeypatch.syspath_prepend(str(site))
    for reg in registries:
        rescan(monkeypatch, reg)
    return site
