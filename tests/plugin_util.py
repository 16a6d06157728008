"""Test helper: 'install' a distribution the way ``importlib.metadata`` sees one -- a
``*.dist-info`` folder with METADATA and entry_points.txt in a folder on ``sys.path`` -- without
pip and without touching the venv."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping


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
