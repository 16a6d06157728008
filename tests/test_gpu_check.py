"""benchmarks/gpu_check.py: on a machine without CUDA it says so in one line and exits with
status 2; the CPU variant of every check runs and prints the table (slow)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_no_gpu_exits_cleanly_with_one_line() -> None:
    p = _run()
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU visible")
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_cpu_variant_runs_every_check() -> None:
    p = _run("--device", "cpu", "--quick")
    assert p.returncode in (0, 1), p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| ")][1:]
    names = [r.split("|")[1].strip() for r in rows]
    assert names == ["device", "bf16 autocast", "channels_last", "DDP (gloo, 2 processes)",
                     "AutoAttack on cpu", "TRADES-10 step, vgg16", "TRADES-10 step, resnet18"]
    ok = {r.split("|")[1].strip(): r.split("|")[2].strip() for r in rows}
    assert all(v == "yes" for k, v in ok.items() if k != "bf16 autocast"), p.stdout
