"""An attack plug-in (examples/mifgsm_attack: MI-FGSM from torchattacks) registered through the
``prunekit.attacks`` entry-point group: discovered by ``ATTACKS``, parsed by its own class,
passing the registry-driven attack contract, evaluated next to PGD with its flags equal to
torchattacks called directly, and carried into the CSV row and the per-example file.

Installation is simulated as in tests/test_plugin.py: a ``*.dist-info`` folder with
``entry_points.txt`` (from the example's pyproject.toml) on ``sys.path``, plus the example.
"""
from __future__ import annotations

import json
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

from prunekit import ATTACKS
from prunekit.attacks import parse_attack
from prunekit.eval import RobustnessEvaluator

from plugin_util import build_wheel, install_example, passed, run_tests
from test_eval import EPS, model, test_set  # noqa: F401 - the trained CNN fixtures

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mifgsm_attack"


def _entry_points() -> dict[str, str]:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    return meta["project"]["entry-points"]["prunekit.attacks"]


@pytest.fixture
def mifgsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """'Install' the example and let ATTACKS rescan its entry points; undone afterwards."""
    yield install_example(monkeypatch, tmp_path / "site", EXAMPLE, "prunekit-mifgsm",
                          {"prunekit.attacks": _entry_points()}, ATTACKS)
    sys.modules.pop("prunekit_mifgsm", None)


def test_example_declares_one_entry_point() -> None:
    assert _entry_points() == {"mi-fgsm": "prunekit_mifgsm:MIFGSM"}


def test_discovered_and_parsed_by_its_own_class(mifgsm: Any) -> None:
    assert "mi-fgsm" in ATTACKS.names()
    spec = parse_attack("MI-FGSM-20")
    assert spec.cls.__module__ == "prunekit_mifgsm" and spec.params == {"steps": 20}
    with pytest.raises(ValueError, match="mi-fgsm\\[-STEPS\\]"):   # its form is listed
        parse_attack("mi-fgsm-x")
    meta = spec.build(0.1).meta
    assert (meta.label, meta.components, meta.box, meta.column, meta.reference) == (
        "MI-FGSM-20", ("mi-fgsm-20",), "white", None, False)
    with pytest.raises(ValueError, match="L-inf only"):
        spec.build(0.5, norm="L2")


def test_contract_tests_pick_it_up(mifgsm: Path) -> None:
    """The attack contract (prunekit.testing), in a fresh process that sees the
    'installed' plug-in, selects and passes ``mi-fgsm``."""
    contract = Path(__file__).resolve().parent / "test_attack_contract.py"
    out = run_tests(contract, "mi-fgsm", [mifgsm, EXAMPLE])
    assert passed(out) == 2, out[-2000:]


def test_evaluated_beside_pgd_and_stored(mifgsm: Any, model, test_set, tmp_path) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    x, y = test_set[0][:100], test_set[1][:100]
    res = RobustnessEvaluator(EPS, attacks=("pgd-10-1", "mi-fgsm-10"), batch_size=50,
                              seed=0).evaluate(model, (x, y))
    atk = torchattacks.MIFGSM(model, eps=EPS, alpha=EPS / 10, steps=10, decay=1.0)
    x_adv = atk(x, y)
    with torch.no_grad():
        oracle = (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)
    assert torch.equal(res.flags["mi-fgsm-10"], oracle)          # torchattacks, called
    assert 0.2 < res.robust_acc["mi-fgsm-10"] < res.clean_acc
    assert res.grad_evals["mi-fgsm-10"] == 10 * int(res.flags["clean"].sum())
    assert res.checks == []
    row = res.to_row()
    assert row["pgd_acc"] == res.robust_acc["pgd-10-1"] and math.isnan(row["aa_acc"])
    assert json.loads(row["robust_acc"])["mi-fgsm-10"] == res.robust_acc["mi-fgsm-10"]
    ex = res.read_examples(res.write_examples(tmp_path / "r.npz", run_id="r", dataset="fmnist"))
    assert ex["mi-fgsm-10"].tolist() == oracle.tolist()
    assert ex.meta["attacks"][1]["label"] == "MI-FGSM-10"


@pytest.mark.slow
def test_example_builds_a_wheel_with_the_entry_point(tmp_path: Path) -> None:
    """The example really is an installable package (built offline, not installed)."""
    names, text = build_wheel(EXAMPLE, tmp_path)
    assert "prunekit_mifgsm.py" in names
    assert "[prunekit.attacks]" in text and "mi-fgsm = prunekit_mifgsm:MIFGSM" in text
