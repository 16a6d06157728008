"""The paper grids end to end at toy size (benchmarks/paper_toy.py), -m slow: vgg16 and
resnet18, dense / d2bc / hydra / admm, TRADES, PGD-50-10 + APGD-CE + standard AutoAttack, on a
few hundred images of the shared CIFAR-10 JPEG archive."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_ARCHIVES = [up / "shared" / "data" / "cifar10-jpeg-q75.tar.gz" for up in ROOT.parents[:2]]
ARCHIVE = next((a for a in _ARCHIVES if a.exists()), _ARCHIVES[0])   # checkout or worktree


def _paper_toy():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import paper_toy
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return paper_toy


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.exists(), reason="the shared CIFAR-10 archive is not here")
def test_paper_grids_end_to_end_at_toy_size(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert _paper_toy().run(str(tmp_path), ["loss.name=trades"], data_root=str(ARCHIVE),
                            train=128, n_eval=8) == 0
    out = capsys.readouterr().out
    rows = _rows(tmp_path)
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert {(r["model"], r["method"]) for r in rows} == {
        (m, k) for m in ("vgg16", "resnet18") for k in ("dense", "d2bc", "hydra", "admm")}
    assert all(r["attacks"] == "pgd-50-10;apgd-ce;autoattack" for r in rows)
    assert all(r["n_eval"] == "8" for r in rows)
    # after the toy overrides the three paper grids are the same runs: the 2nd and 3rd skip them
    assert out.count("8 runs in this shard, 8 finished, 0 to run") == 2


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.exists(), reason="the shared CIFAR-10 archive is not here")
def test_third_wave_paper_grid_end_to_end_at_toy_size(tmp_path: Path) -> None:
    """paper-harp-cifar10.yaml (HARP's official recipe) at toy size: dense, harp, hydra and
    harp-channel at 90 % on vgg16 and resnet18, PGD-AT, standard AutoAttack."""
    paper_toy = _paper_toy()
    assert paper_toy.run(str(tmp_path), [], data_root=str(ARCHIVE), train=128, n_eval=8,
                         grids=paper_toy.THIRD_WAVE_GRIDS) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert {(r["model"], r["method"]) for r in rows} == {
        (m, k) for m in ("vgg16", "resnet18") for k in ("dense", "harp", "hydra", "harp-channel")}


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.exists(), reason="the shared CIFAR-10 archive is not here")
def test_flyingbird_paper_grid_end_to_end_at_toy_size(tmp_path: Path) -> None:
    """paper-flyingbird-cifar10.yaml (FlyingBird's official recipe, sparse training from
    scratch) at toy size: dense, flyingbird and its static control (``fix``) at 90 % on vgg16
    and resnet18, PGD-AT, standard AutoAttack."""
    paper_toy = _paper_toy()
    # 192 images / batch 64 = 3 steps: one topology update (step 2; step 3 is the last)
    assert paper_toy.run(str(tmp_path), [], data_root=str(ARCHIVE), train=192, n_eval=8,
                         grids=paper_toy.FLYINGBIRD_GRIDS) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert sorted((r["model"], r["method"]) for r in rows) == sorted(
        (m, k) for m in ("vgg16", "resnet18") for k in ("dense", "flyingbird", "flyingbird"))
    fb = [json.loads(r["method_summary"]) for r in rows if r["method"] == "flyingbird"]
    assert sorted(s["updates"] for s in fb) == [0, 0, 1, 1]   # fix: none
    assert all(r["pretrain_hash"] == "" for r in rows if r["method"] == "flyingbird")
