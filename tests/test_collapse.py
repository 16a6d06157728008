"""Chance-level collapse warnings (prunekit/train/collapse.py): fire on the collapsed
fmnist-certify CROWN-IBP rows (issue 21), never on healthy published figures."""
from __future__ import annotations

import math

import pytest

from prunekit.bench.cells import method_warnings
from prunekit.train.collapse import (at_chance, chance_threshold, eval_collapse,
                                     is_collapse_warning, stats_collapse)
from prunekit.train.records import StageRecord, append_warnings, stage_warnings

# last-epoch stats of the published (collapsed) fmnist-certify CROWN-IBP dense pretraining and
# a healthy smoothing one (benchmarks/results/fmnist-certify/runs/*/run.json)
COLLAPSED_PRETRAIN = {"clean_acc": 0.273, "robust_loss": 2.525, "verified_acc": 0.087,
                      "adv_acc": 0.087, "loss": 2.525}
COLLAPSED_FINETUNE = {"clean_acc": 0.097, "robust_loss": 2.313, "verified_acc": 0.095}
HEALTHY_SMOOTH = {"clean_acc": 0.781, "adv_acc": 0.765, "loss": 0.66}


def test_threshold_is_three_binomial_se_or_half_p_q() -> None:
    p = 0.1
    assert chance_threshold(10, 200) == pytest.approx(p + 3 * math.sqrt(p * (1 - p) / 200))
    assert chance_threshold(10, 6000) == pytest.approx(p + p * (1 - p) / 2)   # 14.5 %
    assert chance_threshold(2, 10_000) == pytest.approx(0.625)
    assert at_chance(0.135, 10, 200) and not at_chance(0.17, 10, 200)


@pytest.mark.parametrize("acc", [0.08, 0.1, 0.135])      # the seven collapsed rows' range
def test_eval_collapse_fires_on_the_collapsed_rows(acc: float) -> None:
    (w,) = eval_collapse(acc, 10, 200)
    assert "chance level" in w and f"{100 * acc:.1f} %" in w and "200 test images" in w


@pytest.mark.parametrize("acc", [0.485, 0.512, 0.725, 0.781])   # lowest healthy published
def test_eval_collapse_silent_on_healthy_rows(acc: float) -> None:
    assert eval_collapse(acc, 10, 200) == []
    assert eval_collapse(None, 10, 200) == [] and eval_collapse(0.1, 10, 0) == []


def test_stats_collapse_robust_loss_and_clean() -> None:
    (w,) = stats_collapse(COLLAPSED_PRETRAIN, 10, 6000)      # clean 27 %: only the loss check
    assert "robust loss 2.525" in w and "ln 10" in w
    both = stats_collapse(COLLAPSED_FINETUNE, 10, 6000)
    assert len(both) == 2 and "clean accuracy 9.7 %" in both[0]
    assert stats_collapse(HEALTHY_SMOOTH, 10, 6000) == []
    # a verified-training stage that verifies something is not stuck, whatever its loss
    assert stats_collapse({"clean_acc": 0.7, "robust_loss": 2.3, "verified_acc": 0.3},
                          10, 6000) == []
    # far from ln K (early in an eps ramp the loss explodes): not "stuck"
    assert stats_collapse({"clean_acc": 0.6, "robust_loss": 19.3, "verified_acc": 0.07},
                          10, 6000) == []


def test_stage_warnings_reach_the_report_marker() -> None:
    recs = {"pretrain": StageRecord(epochs=5, last=COLLAPSED_PRETRAIN),
            "prune": StageRecord(skipped=True, last=COLLAPSED_FINETUNE),
            "finetune": StageRecord(epochs=2, last=HEALTHY_SMOOTH, warnings=["own"])}
    assert stage_warnings(recs) == ["finetune: own"]           # no classes: as before
    warns = stage_warnings(recs, num_classes=10, n_train=6000)
    assert [w.split(":")[0] for w in warns] == ["pretrain", "finetune"]
    summary = append_warnings({"kept": 1, "warnings": ["x"]}, warns)
    assert method_warnings(summary) == ["x", *warns]          # -> the report's dagger
    assert is_collapse_warning(warns[0]) and not is_collapse_warning(warns[1])   # "own"
    assert is_collapse_warning(eval_collapse(0.1, 10, 200)[0])
    assert append_warnings({"kept": 1}, []) == {"kept": 1}
