"""Certification in the evaluator: ``certified_acc`` column, per-example certificates and radii
(examples format 2, format 1 still read), never in ``worst``; the certificate/attack consistency
check fails loudly on a constructed inconsistency."""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from prunekit import CERTIFIERS
from prunekit.certify import CertificationInconsistency, CertOutcome, Certifier
from prunekit.certify.consistency import check_consistency
from prunekit.errors import ConfigError
from prunekit.eval import RobustnessEvaluator
from prunekit.eval.examples import read_examples


def _setup() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3)).eval()
    x = torch.rand(12, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 3       # two misclassified points
    return model, x, y


def test_certificates_in_result_row_and_examples(tmp_path: Path) -> None:
    model, x, y = _setup()
    ev = RobustnessEvaluator(0.01, attacks=["pgd-10-1"], batch_size=5, certify=[
        "ibp", "crown-ibp", {"name": "smoothing", "sigma": 0.1, "n0": 10, "n": 50,
                             "radii": [0.0, 0.05], "batch": 50}])
    res = ev.evaluate(model, (x, y))
    assert set(res.certified) == {"ibp", "crown-ibp", "smooth0.1@0", "smooth0.1@0.05"}
    assert res.certified["crown-ibp"] >= res.certified["ibp"]
    assert res.certified["ibp"] <= res.robust_acc["pgd-10-1"] <= res.clean_acc
    assert not res.cert_flags["ibp"][:2].any()           # wrong points are never certified
    assert "ibp" not in res.flags and res.worst_acc == res.robust_acc["pgd-10-1"]
    row = res.to_row()
    assert json.loads(row["certified_acc"]) == pytest.approx(res.certified)
    r = res.radii["smoothing"]
    assert r.shape == (12,) and torch.isinf(r[:2]).all()
    path = res.write_examples(tmp_path / "e.npz", run_id="r", dataset="synth")
    ex = read_examples(path)
    assert ex.meta["format"] == 2 and ex.names[-1] == "worst"
    assert ex["crown-ibp"].tolist() == res.cert_flags["crown-ibp"].tolist()
    assert np.array_equal(ex.radius("smoothing"), r.numpy())
    assert [c["name"] for c in ex.meta["certify"]] == ["ibp", "crown-ibp", "smoothing"]


def test_format_1_examples_still_read(tmp_path: Path) -> None:
    meta = {"format": 1, "run_id": "r", "dataset": "d", "split": "test", "eps": 0.1,
            "norm": "Linf", "seed": 0, "attacks": [], "reused": {}}
    p = tmp_path / "old.npz"
    np.savez_compressed(p, index=np.arange(3, dtype=np.int64),
                        names=np.array(["clean", "pgd", "worst"]),
                        flags=np.ones((3, 3), bool), meta=np.array(json.dumps(meta)))
    ex = read_examples(p)
    assert ex.cert_names == () and ex["pgd"].all()


class _Liar(Certifier):
    """Claims every correctly classified example verified: unsound by construction."""

    norm: ClassVar[str] = "Linf"

    def metrics(self) -> list[str]:
        return ["liar"]

    def certify(self, model: nn.Module, x: Tensor, y: Tensor) -> CertOutcome:
        return CertOutcome({"liar": (model(x).argmax(1) == y).cpu()})


def test_consistency_check_fires_on_a_constructed_inconsistency() -> None:
    model, x, y = _setup()
    CERTIFIERS.add("test-liar", _Liar)
    try:
        ev = RobustnessEvaluator(0.5, attacks=["pgd-10-1"], certify=["test-liar"])
        with pytest.raises(CertificationInconsistency, match="test-liar|liar.*pgd-10-1"):
            ev.evaluate(model, (x, y))
        # the sound certifiers at the same eps pass the same check
        RobustnessEvaluator(0.5, attacks=["pgd-10-1"], certify=["ibp", "crown-ibp"]).evaluate(
            model, (x, y))
    finally:
        CERTIFIERS._entries.pop("test-liar", None)
    with pytest.raises(CertificationInconsistency, match="examples \\[7\\]"):
        check_consistency({"c": torch.tensor([True, True])}, {"a": torch.tensor([True, False])},
                          torch.tensor([3, 7]))


def test_bad_certifier_is_one_line() -> None:
    with pytest.raises(ConfigError, match="valid"):
        RobustnessEvaluator(0.1, attacks=["pgd-10-1"], certify=["nope"])
    with pytest.raises(ConfigError, match="sigma"):
        RobustnessEvaluator(0.1, attacks=["pgd-10-1"], certify=[{"name": "smoothing",
                                                                  "sigma": -1}])
