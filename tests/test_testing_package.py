"""``python -m pytest --pyargs prunekit.testing`` (issue 24): the contract tests ship with the
package and run, outside the repository, on plug-ins installed outside it: examples/l1_pruner
and a throwaway package written here (an attack and a dataset), each 'installed' as in
tests/plugin_util.py (a dist-info on PYTHONPATH); the slow case installs the throwaway package
with pip. The repository's tests collect the same modules."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import prunekit.testing
from prunekit import ATTACKS, DATASETS, PRUNERS

from plugin_util import fake_dist, passed

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "l1_pruner"
FAMILIES = ("attack", "dataset", "loss", "model", "pruner", "search")

# A throwaway plug-in distribution: one attack (a single signed-gradient step, FGSM) and one
# dataset (two classes of noisy bright / dark squares), declared by entry points.
TOY_MODULE = '''
import torch
import torch.nn.functional as F
from prunekit.attacks import Attack, AttackOutcome
from prunekit.data import DataSpec, TensorImageDataset


class ToyFGSM(Attack):
    label = "toy FGSM"
    seeded = True            # no randomness at all

    def run(self, model, x, y):
        x = x.clone().requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        x_adv = (x + self.eps * grad.sign()).clamp(0, 1).detach()
        with torch.no_grad():
            robust = (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)
        return AttackOutcome(robust=robust, x_adv=torch.where(
            robust.view(-1, 1, 1, 1), x.detach(), x_adv))


class ToyLiar(ToyFGSM):
    """A broken attack: says every point is robust, the clean-misclassified ones too."""
    label = "toy liar"

    def run(self, model, x, y):
        return AttackOutcome(robust=torch.ones(len(x), dtype=torch.bool), x_adv=x)


def toy_squares(root=None, split="train", augment=None, download=False, size=12):
    g = torch.Generator().manual_seed(int(split == "test"))
    y = torch.arange(size) % 2
    x = (0.3 + 0.4 * y.view(-1, 1, 1, 1) + 0.1 * torch.rand(size, 1, 8, 8, generator=g))
    spec = DataSpec("toy-squares", (1, 8, 8), 2, mean=(0.5,), std=(0.25,), eps=0.1,
                    class_names=("dark", "bright"))
    return TensorImageDataset((x * 255).round().to(torch.uint8), y, spec, None)
'''
TOY_EPS = {"prunekit.attacks": {"toy-fgsm": "toyplug:ToyFGSM", "toy-liar": "toyplug:ToyLiar"},
           "prunekit.datasets": {"toy-squares": "toyplug:toy_squares"}}
TOY_PYPROJECT = '''
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "toyplug"
version = "0.0.1"
dependencies = ["prunekit"]

[project.entry-points."prunekit.attacks"]
toy-fgsm = "toyplug:ToyFGSM"
toy-liar = "toyplug:ToyLiar"

[project.entry-points."prunekit.datasets"]
toy-squares = "toyplug:toy_squares"

[tool.setuptools]
py-modules = ["toyplug"]
'''


def _outside(cwd: Path, argv: list[str], *path: Path, code: int = 0) -> str:
    """``python -m <argv>`` in ``cwd`` (outside the repository) with ``path`` on PYTHONPATH;
    returns the output, asserting the exit status ``code``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


def _pyargs(cwd: Path, select: str, *path: Path) -> str:
    """``python -m pytest --pyargs prunekit.testing -k select``, outside the repository."""
    return _outside(cwd, ["pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
                          "prunekit.testing", "-k", select], *path)


def _toy_package(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "toyplug.py").write_text(textwrap.dedent(TOY_MODULE))
    (folder / "pyproject.toml").write_text(textwrap.dedent(TOY_PYPROJECT))
    return folder


def test_repository_tests_reuse_the_shipped_modules() -> None:
    import test_attack_contract
    import test_dataset_contract
    import test_pruner_contract

    from prunekit.testing import test_attack_contract as attack
    from prunekit.testing import test_dataset_contract as dataset
    from prunekit.testing import test_pruner_contract as pruner

    assert test_pruner_contract.test_state_dict_round_trip is pruner.test_state_dict_round_trip
    assert test_attack_contract.test_flags_verified_and_modes_restored is \
        attack.test_flags_verified_and_modes_restored
    assert test_dataset_contract.test_spec_matches_samples is dataset.test_spec_matches_samples
    assert test_dataset_contract.source is not dataset.source   # the repo's tiny stand-ins
    shipped = Path(prunekit.testing.__file__).parent
    assert all((shipped / f"test_{f}_contract.py").exists() for f in FAMILIES)


def test_pyargs_and_check_on_outside_plugins(tmp_path: Path) -> None:
    """From an unrelated folder: the shipped tests select and pass an outside pruner
    (examples/l1_pruner) and a throwaway attack + dataset package; ``prunekit check`` runs the
    same cases by exact name, and the throwaway package's broken attack fails its contract."""
    pkg = _toy_package(tmp_path / "toyplug")
    site = fake_dist(tmp_path / "site", "toyplug", TOY_EPS, version="0.0.1")
    fake_dist(site, "prunekit-l1-pruner", {"prunekit.pruners": {"l1-filter": "l1_pruner:L1Filter"}})
    out = _pyargs(tmp_path, "l1-filter or toy-fgsm or toy-squares", site, pkg, EXAMPLE)
    n_l1 = 9  # every pruner contract case (2 models x 3 tests + 3 bad sparsities)
    assert passed(out) == n_l1 + 2 + 4 and "skipped" not in out, out[-2000:]
    for name, reg in (("l1-filter", PRUNERS), ("toy-fgsm", ATTACKS), ("toy-squares", DATASETS)):
        assert name not in reg.names()  # this process saw nothing of the install
    out = _outside(tmp_path, ["prunekit", "check", "toy-liar"], site, pkg, code=1)
    assert "robust where the clean prediction is wrong" in out and "1 failed" in out, out


def test_check_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    from prunekit.cli import main

    assert main(["check", "l1-channel", "no-such-thing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunekit check: error: 'no-such-thing' is not a registered") and \
        "\n" not in err


@pytest.mark.slow
def test_pyargs_after_a_real_pip_install(tmp_path: Path) -> None:
    """The same package installed by pip (``--target``: a real dist-info and module, no venv
    change), then the shipped contract tests run against it from an unrelated folder."""
    pkg = _toy_package(tmp_path / "src" / "toyplug")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(pkg)], check=True)
    assert (site / "toyplug.py").is_file() and list(site.glob("toyplug-0.0.1.dist-info"))
    out = _pyargs(tmp_path, "toy-fgsm or toy-squares", site)
    assert passed(out) == 2 + 4, out[-2000:]
    out = _outside(tmp_path, ["prunekit", "check", "toy-fgsm", "toy-squares"], site)
    assert passed(out) == 2 + 4, out[-2000:]
