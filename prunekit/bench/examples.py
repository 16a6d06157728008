"""Reading per-example result files (``examples/<run_id>.npz``, docs/results-schema.md).

The report pairs two runs only where their ``index`` arrays are identical (same test examples
in the same order) and both have the flag row being compared.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PerExample", "load_per_example", "same_examples"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PerExample:
    """One run's per-example flags: ``flags[names.index(a)][j]`` = example ``index[j]`` is
    correct (clean) / robust under attack ``a``."""

    index: np.ndarray
    names: tuple[str, ...]
    flags: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self, name: str) -> np.ndarray | None:
        """The bool flags of ``name`` (``clean``, an attack, ``worst``), or None."""
        return self.flags[self.names.index(name)] if name in self.names else None

    def attack_meta(self, name: str) -> dict[str, Any]:
        """The stored metadata of attack ``name`` (``label``, ``components``, ...), or {}."""
        for a in self.meta.get("attacks", []) or []:
            if isinstance(a, dict) and a.get("name") == name:
                return a
        return {}


def load_per_example(csv_dir: Path, rel: str) -> PerExample | None:
    """Read ``csv_dir / rel``; None (and a warning) if it is missing or not in the format."""
    if not rel:
        return None
    path = Path(csv_dir) / rel
    try:
        with np.load(path, allow_pickle=False) as z:
            index = np.asarray(z["index"], dtype=np.int64)
            names = tuple(str(n) for n in z["names"])
            flags = np.asarray(z["flags"], dtype=bool)
            meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
    except (OSError, KeyError, ValueError) as exc:
        log.warning("per-example file %s unreadable (%s); its run is not paired", path, exc)
        return None
    if flags.shape != (len(names), len(index)):
        log.warning("per-example file %s: flags %s do not match %d names x %d examples", path,
                    flags.shape, len(names), len(index))
        return None
    return PerExample(index=index, names=names, flags=flags, meta=meta)


def same_examples(a: PerExample | None, b: PerExample | None) -> bool:
    """True if both exist and evaluated the same examples in the same order."""
    return (a is not None and b is not None and a.index.shape == b.index.shape
            and bool(np.array_equal(a.index, b.index)))
