"""Shared fixtures (kept small). Owner: data/models engineer; ask before adding."""
from __future__ import annotations

import os
import signal

# A test run started in the background by a non-interactive shell (`make test &`, nohup, some CI
# runners) inherits SIGINT *ignored*, and every process the tests start would inherit it too:
# then the Ctrl-C tests' SIGINT never reaches the bench processes, which run on until the
# tests' communicate() timeout (measured: test_bench_jobs' two Ctrl-C tests failed exactly so in
# a `nohup pytest &` run). A Python-level handler here resets to SIG_DFL across exec, so the
# children get Python's usual KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Tiny models gain nothing from intra-op threads, and two threads collapse (4-6x slower) as soon
# as anything else runs on a 2-core machine: one thread for the tests and their subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import prunekit


@pytest.fixture
def tiny_dataset() -> torch.utils.data.Dataset:
    """64 synthetic 1x28x28 images, 4 classes (deterministic, learnable, no disk access)."""
    return prunekit.DATASETS.build("synthetic", split="train", input_shape=(1, 28, 28),
                                   num_classes=4, size=64, seed=0)


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    """``vgg-small`` at width 0.25 for 1x28x28 inputs and 4 classes (a few thousand params)."""
    return prunekit.MODELS.build("vgg-small", num_classes=4, in_channels=1, width=0.25)
