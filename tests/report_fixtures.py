"""Synthetic results for the report tests: schema-v2 rows and per-example files written by
prunekit's own writer (``examples/<run_id>.npz``, docs/results-schema.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from prunekit.attacks.parse import parse_attack
from prunekit.bench.store import ResultsStore
from prunekit.eval.examples import write_examples

def _attack_record(name: str) -> dict:
    """The stored metadata of an attack, as the evaluator writes it (its ``AttackMeta``), or a
    minimal record for a name prunekit does not parse (a plug-in attack)."""
    try:
        return parse_attack(name).meta.record()
    except ValueError:
        return {"name": name, "label": name, "components": [name], "norms": ["Linf"],
                "box": "white", "targeted": False, "standard": False}


def write_per_example(out: Path, run_id: str, flags: Mapping[str, np.ndarray],
                      index: Sequence[int] | None = None, seed: int = 0) -> str:
    """Write ``out/examples/<run_id>.npz`` (prunekit.eval.examples.write_examples) from
    ``{"clean": bool[n], <attack>: ..., "worst": ...}`` (``worst`` derived if absent);
    returns the path relative to ``out``."""
    names = [n for n in flags if n != "worst"]
    rows = [np.asarray(flags[n], bool) for n in names]
    worst = np.asarray(flags["worst"], bool) if "worst" in flags else (
        np.logical_and.reduce(rows[1:]) if len(rows) > 1 else rows[0])
    idx = np.arange(len(rows[0])) if index is None else np.asarray(index)
    meta = {"run_id": run_id, "dataset": "synthetic", "split": "test", "eps": 0.1,
            "norm": "Linf", "seed": seed, "attacks": [_attack_record(a) for a in names[1:]],
            "reused": {}}
    rel = f"examples/{run_id}.npz"
    write_examples(out / rel, index=idx, names=names + ["worst"], flags=np.vstack(rows + [worst]),
                   meta=meta)
    return rel


def add_run(store: ResultsStore, run_id: str, method: str, flags: Mapping[str, np.ndarray], *,
            loss: str = "trades", sparsity: float = 0.0, seed: int = 0, granularity: str = "",
            rel_macs: float = 1.0, rel_params: float = 1.0, index: Sequence[int] | None = None,
            per_example: bool = True, dense_macs: float = 1e6, dense_params: float = 1e5,
            summary: Mapping[str, Any] | None = None, finished_at: str = "",
            variant: str = "", model: str = "vgg-small",
            extra: Mapping[str, Any] | None = None) -> None:
    """Append one ``ok`` schema-v2 row whose accuracies are the means of ``flags``
    (``rel_params``: non-zero parameters relative to dense; NaN = not measured; ``extra``: more
    columns, e.g. the schema-v3 ``train_epochs`` / ``train_passes`` / ``nonzero_params``)."""
    gran = granularity or {"dense": "none"}.get(method, "weight")
    rel = write_per_example(store.path.parent, run_id, flags, index, seed) if per_example else ""
    acc = {k: float(np.mean(v)) for k, v in flags.items()}
    attacks = [a for a in flags if a not in ("clean", "worst")]
    worst = acc.get("worst", float(np.mean(np.logical_and.reduce(
        [np.asarray(flags[a], bool) for a in attacks])) if attacks else acc["clean"]))
    n = len(next(iter(flags.values())))
    store.append({
        "run_id": run_id, "status": "ok", "method": method, "granularity": gran, "loss": loss,
        "dataset": "synthetic", "model": model, "target_sparsity": sparsity,
        "weight_sparsity": 1 - rel_params, "macs_reduction": 1 - rel_macs,
        "params": dense_params * (rel_params if gran != "weight" else 1.0),
        "macs": dense_macs * rel_macs, "seed": seed, "eps": 0.1, "n_eval": n,
        "clean_acc": acc["clean"], "worst_acc": worst, "attacks": ";".join(attacks),
        "sparsity_target": {"none": "none", "channel": "macs"}.get(gran, "weights"),
        "params_reduction": 1 - rel_params, "examples": rel,
        "method_summary": json.dumps(summary or {}), "finished_at": finished_at,
        "variant": variant,
        "robust_acc": json.dumps({a: acc[a] for a in attacks}), "pretrain_hash": f"p{seed}",
        **(extra or {}),
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


def demo_run(cfg: Any, workdir: Path, cache_dir: Path, device: str | None) -> dict[str, Any]:
    """A bench run function (``PRUNEKIT_BENCH_RUN_FN=report_fixtures:demo_run``) for the demo
    grid's four methods with known per-example flags on 200 examples: dense robust on 100;
    hydra loses 30 of them (significant), admm 2 (noise), both masked (dense MACs, 0.12x
    non-zero params); d2bc loses 30 at a tenth of the MACs."""
    import torch

    from prunekit.bench.runner import EVAL_RESULT
    from prunekit.eval.result import EvalResult

    lost = {"dense": 0, "hydra": 30, "admm": 2, "d2bc": 30}[cfg.method]
    clean = torch.ones(200, dtype=torch.bool)
    robust = torch.zeros(200, dtype=torch.bool)
    robust[lost:100] = True
    flags = {"clean": clean, **{a: robust for a in cfg.eval.attacks}}
    result = EvalResult.from_flags(eps=0.1, norm="Linf", attacks=list(cfg.eval.attacks),
                                   flags=flags, seconds={}, index=torch.arange(200))
    rel_macs = 0.1 if cfg.method == "d2bc" else 1.0
    # non-zero params as measure() gives them: masks zero 90 % of the prunable weights
    nonzero = {"dense": 1.0, "hydra": 0.12, "admm": 0.12, "d2bc": 0.2}[cfg.method]
    return {"params": 20000 if cfg.method == "d2bc" else 100000, "macs": int(1e6 * rel_macs),
            "weight_sparsity": cfg.sparsity, "macs_reduction": 1 - rel_macs,
            "params_reduction": 1 - nonzero, "train_s": 0.0, "device": "cpu", EVAL_RESULT: result}
