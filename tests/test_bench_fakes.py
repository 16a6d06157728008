"""Fake run functions for the bench harness tests (no tests here).

Used in-process (``run_grid(..., run_fn=fake_run)``) and in subprocesses through
``PRUNEKIT_BENCH_RUN_FN=test_bench_fakes:fake_run`` with ``tests/`` on ``PYTHONPATH``.
Environment switches: ``PRUNEKIT_FAKE_FAIL=<method>`` makes that method's runs raise (like the
training loop's NaN-loss error); ``PRUNEKIT_FAKE_BLOCK=1`` makes every run after this process's
first one block until the process is killed; ``PRUNEKIT_FAKE_DIE=<path>`` makes the first run
(of any process) that creates the file ``<path>`` kill its own process with the signal
``PRUNEKIT_FAKE_DIE_SIG`` (``KILL`` by default: what the OOM killer sends).
"""
from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

_CALLS = {"n": 0}


def fake_metrics(cfg: Any) -> dict[str, Any]:
    """Deterministic, plausible metrics: accuracy falls with sparsity, seeds jitter it."""
    h = int(hashlib.sha256(cfg.config_hash().encode()).hexdigest()[:6], 16) / 0xFFFFFF
    sp = cfg.sparsity
    clean = 0.85 - 0.2 * sp ** 3 + 0.01 * (h - 0.5)
    return {"clean_acc": clean, "pgd_acc": clean - 0.40, "apgd_acc": clean - 0.41,
            "aa_acc": clean - 0.43, "worst_acc": clean - 0.44, "eps": 0.1, "n_eval": 64,
            "params": int(1e5 * (1 - sp)), "macs": int(1e7 * (1 - sp)) + 1000,
            "weight_sparsity": sp, "macs_reduction": sp, "train_s": 0.01, "eval_s": 0.01,
            "checks": "ok", "device": "cpu"}


def fake_run(cfg: Any, workdir: Path, cache_dir: Path, device: str | None) -> dict[str, Any]:
    _CALLS["n"] += 1
    calls = Path(workdir) / "calls.txt"
    calls.write_text(str(int(calls.read_text()) + 1 if calls.exists() else 1))
    die = os.environ.get("PRUNEKIT_FAKE_DIE")
    if die:
        try:
            os.close(os.open(die, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            Path(die).write_text(cfg.name.split("/")[-1])  # the run id that dies
            os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("PRUNEKIT_FAKE_DIE_SIG",
                                                                        "KILL")))
            signal.pause()  # a handled signal (TERM) raises here
    if os.environ.get("PRUNEKIT_FAKE_BLOCK") and _CALLS["n"] > 1:
        print(f"fake run: blocking pid {os.getpid()}", flush=True)
        signal.pause()  # wait here until the test kills the process
    if cfg.method == os.environ.get("PRUNEKIT_FAKE_FAIL"):
        raise RuntimeError("non-finite loss (nan) at epoch 0, step 3\nsecond line")
    return fake_metrics(cfg)
