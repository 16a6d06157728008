"""The report's view of per-example result files (``examples/<run_id>.npz``, read and validated
by :func:`prunekit.eval.examples.read_examples`; format in docs/results-schema.md).

The report pairs two runs only where their ``index`` arrays are identical (same test examples
in the same order) and both have the flag row being compared.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from prunekit.eval.examples import CERTIFIED, Examples, ExamplesError, read_examples

__all__ = ["load_per_example", "flag_row", "attack_meta", "same_examples"]

log = logging.getLogger(__name__)


def load_per_example(csv_dir: Path, rel: str, run_id: str | None = None) -> Examples | None:
    """Read ``csv_dir / rel``; None (and a warning: the run is then not paired) if ``rel`` is
    empty, the file is missing, it is not a per-example file, or its ``meta.run_id`` names
    another run than ``run_id`` (a file copied over another run's would pair a run with
    itself: a difference of exactly 0)."""
    if not rel:
        return None
    try:
        ex = read_examples(Path(csv_dir) / rel)
    except (ExamplesError, FileNotFoundError) as exc:
        log.warning("%s; its run is not paired", exc)
        return None
    own = ex.meta.get("run_id")
    if run_id and own and own != run_id:
        log.warning("%s belongs to run %s, not to %s (copied from another run?); %s is not "
                    "paired", Path(csv_dir) / rel, own, run_id, run_id)
        return None
    return ex


def flag_row(ex: Examples, name: str) -> np.ndarray | None:
    """The bool flags of ``name`` (``clean``, an attack, ``worst``, ``certified:<metric>``),
    or None."""
    if name.startswith(CERTIFIED):
        name = name[len(CERTIFIED):]
        return ex[name] if name in ex.cert_names else None
    return ex[name] if name in ex.names else None


def attack_meta(ex: Examples, name: str) -> dict[str, Any]:
    """The stored metadata record of attack ``name`` (``label``, ``components``, ...), or {}."""
    for a in ex.meta.get("attacks", []) or []:
        if isinstance(a, dict) and a.get("name") == name:
            return a
    return {}


def same_examples(a: Examples | None, b: Examples | None) -> bool:
    """True if both exist and evaluated the same examples in the same order."""
    return (a is not None and b is not None and a.index.shape == b.index.shape
            and bool(np.array_equal(a.index, b.index)))
