"""`prunekit train ... > log.txt` (issue 24): with stdout a file (SLURM, nohup) the header comes
first, before any training, and every epoch of every stage writes one line (loss, accuracies,
seconds per epoch, ETA) without -v; no progress bar reaches the file."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml


def test_log_file_gets_header_then_one_line_per_epoch(tmp_path: Path) -> None:
    cfg = {"name": "tiny", "seed": 0, "device": "cpu",
           "data": {"dataset": "synthetic", "train_subset": 32, "batch_size": 16,
                    "input_shape": [1, 12, 12], "num_classes": 4, "size": 64},
           "model": {"name": "vgg-small", "width": 0.25}, "loss": {"name": "trades", "steps": 1},
           "pretrain": {"epochs": 2, "lr": 0.05}, "method": "dense", "sparsity": 0.0,
           "prune": {"epochs": 0, "lr": 0.01}, "finetune": {"epochs": 1, "lr": 0.01}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "prunekit", "train", "--config", "c.yaml",
                               "--workdir", "w", "--no-eval"], cwd=tmp_path, stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=600,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0].startswith("prunekit train: tiny (dense, sparsity 0, trades, vgg-small on "
                               "synthetic); prunekit ")
    epochs = [ln.strip() for ln in lines if re.search(r"epoch \d+/\d+:", ln)]
    assert [e.split(":")[0] for e in epochs] == ["pretrain epoch 1/2", "pretrain epoch 2/2",
                                                 "finetune epoch 1/1"]
    assert all(re.search(r"loss [\d.]+, clean [\d.]+ %, adv [\d.]+ %, [\d.]+ s/epoch, ETA ", e)
               for e in epochs)
    assert "\r" not in log.read_text() and "it/s" not in proc.stderr  # no tqdm off a terminal


def test_cli_start_loads_no_scipy_pandas_or_matplotlib() -> None:
    """What runs before the header is the import of the CLI: torch, and nothing heavy that
    training does not need (scipy.stats alone cost ~1 CPU-s there; the report's pandas,
    statsmodels and matplotlib load when a report is made)."""
    code = ("import sys, prunekit.cli; print(' '.join(m for m in ('scipy', 'pandas', "
            "'matplotlib', 'statsmodels') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.stdout.strip() == "", out.stdout
