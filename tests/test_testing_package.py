"""``python -m pytest --pyargs prunekit.testing`` (issue 24): the contract tests ship with the
package and run, outside the repository, on a plug-in installed outside it (examples/l1_pruner,
'installed' as in tests/plugin_util.py); the repository's tests collect the same modules."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import prunekit.testing
from prunekit import PRUNERS

from plugin_util import fake_dist, passed

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "l1_pruner"


def test_repository_tests_reuse_the_shipped_modules() -> None:
    import test_pruner_contract

    from prunekit.testing import test_pruner_contract as shipped

    assert test_pruner_contract.test_state_dict_round_trip is shipped.test_state_dict_round_trip
    assert Path(prunekit.testing.__file__).parent.joinpath("test_loss_contract.py").exists()


def test_pyargs_runs_the_contract_on_an_outside_plugin(tmp_path: Path) -> None:
    site = fake_dist(tmp_path / "site", "prunekit-l1-pruner",
                     {"prunekit.pruners": {"l1-filter": "l1_pruner:L1Filter"}})
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--pyargs", "prunekit.testing", "-k", "l1-filter"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert passed(proc.stdout) >= 4, proc.stdout[-2000:]
    assert "l1-filter" not in PRUNERS.names()  # this process saw nothing of the install
