"""Synthetic results for the report tests: schema-v2 rows and per-example files written exactly
as docs/results-schema.md specifies (``examples/<run_id>.npz``: index, names, flags, meta)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from prunekit.bench.store import ResultsStore

#: metadata of the attacks as the evaluator stores it (docs/results-schema.md)
ATTACK_META = {
    "pgd-5-1": {"name": "pgd-5-1", "label": "PGD-5", "components": ["pgd-5-1"],
                "norms": ["Linf"], "box": "white", "targeted": False, "standard": False},
    "autoattack-fast": {"name": "autoattack-fast", "label": "APGD-CE + APGD-T",
                        "components": ["apgd-ce", "apgd-t"], "norms": ["Linf"],
                        "box": "white", "targeted": False, "standard": False},
}


def write_examples(out: Path, run_id: str, flags: Mapping[str, np.ndarray],
                   index: Sequence[int] | None = None, seed: int = 0) -> str:
    """Write ``out/examples/<run_id>.npz`` from ``{"clean": bool[n], <attack>: ..., "worst":
    ...}`` (``worst`` is derived if absent); returns the path relative to ``out``."""
    names = [n for n in flags if n != "worst"]
    rows = [np.asarray(flags[n], bool) for n in names]
    attacks = rows[1:]
    worst = np.asarray(flags["worst"], bool) if "worst" in flags else (
        np.logical_and.reduce(attacks) if attacks else rows[0])
    n = len(rows[0])
    idx = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, np.int64)
    meta = {"format": 1, "run_id": run_id, "dataset": "synthetic", "split": "test", "eps": 0.1,
            "norm": "Linf", "seed": seed,
            "attacks": [ATTACK_META.get(a, {"name": a}) for a in names[1:]], "reused": {}}
    rel = f"examples/{run_id}.npz"
    (out / "examples").mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / rel, index=idx, names=np.array(names + ["worst"]),
                        flags=np.vstack(rows + [worst]), meta=np.array(json.dumps(meta)))
    return rel


def add_run(store: ResultsStore, run_id: str, method: str, flags: Mapping[str, np.ndarray], *,
            loss: str = "trades", sparsity: float = 0.0, seed: int = 0, granularity: str = "",
            rel_macs: float = 1.0, rel_params: float = 1.0, index: Sequence[int] | None = None,
            per_example: bool = True, dense_macs: float = 1e6, dense_params: float = 1e5) -> None:
    """Append one ``ok`` schema-v2 row whose accuracies are the means of ``flags``."""
    gran = granularity or {"dense": "none"}.get(method, "weight")
    rel = write_examples(store.path.parent, run_id, flags, index, seed) if per_example else ""
    acc = {k: float(np.mean(v)) for k, v in flags.items()}
    attacks = [a for a in flags if a not in ("clean", "worst")]
    worst = acc.get("worst", float(np.mean(np.logical_and.reduce(
        [np.asarray(flags[a], bool) for a in attacks])) if attacks else acc["clean"]))
    n = len(next(iter(flags.values())))
    store.append({
        "run_id": run_id, "status": "ok", "method": method, "granularity": gran, "loss": loss,
        "dataset": "synthetic", "model": "vgg-small", "target_sparsity": sparsity,
        "weight_sparsity": 1 - rel_params, "macs_reduction": 1 - rel_macs,
        "params": dense_params * (rel_params if gran != "weight" else 1.0),
        "macs": dense_macs * rel_macs, "seed": seed, "eps": 0.1, "n_eval": n,
        "clean_acc": acc["clean"], "worst_acc": worst, "attacks": ";".join(attacks),
        "sparsity_target": {"none": "none", "channel": "macs"}.get(gran, "weights"),
        "params_reduction": 1 - rel_params, "examples": rel, "method_summary": "{}",
        "robust_acc": json.dumps({a: acc[a] for a in attacks}), "pretrain_hash": f"p{seed}",
    })


def paired_flags(n: int, only_a: int, only_b: int, both: int) -> tuple[np.ndarray, np.ndarray]:
    """Two bool rows over ``n`` examples: ``only_a`` right only in a, ``only_b`` only in b,
    ``both`` right in both, the rest wrong in both."""
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    a[:only_a] = True
    b[only_a:only_a + only_b] = True
    a[only_a + only_b:only_a + only_b + both] = True
    b[only_a + only_b:only_a + only_b + both] = True
    return a, b
