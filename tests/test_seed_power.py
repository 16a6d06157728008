"""benchmarks/perf/seed_power.py sizes the seeds of a grid (issue 19): its t-test power agrees
with statsmodels where statsmodels is finite, is monotone where statsmodels gives NaN, and
``seeds_needed`` is then monotone in the effect."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from statsmodels.stats.power import TTestPower

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "seed_power.py"
_spec = importlib.util.spec_from_file_location("seed_power", _PATH)
seed_power = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_power)  # type: ignore[union-attr]


@pytest.mark.parametrize("es,n", [(0.5, 20), (1.0, 5), (2.0, 3), (3.0, 4), (10.0, 2)])
def test_power_matches_statsmodels(es, n):
    ref = float(TTestPower().power(effect_size=es, nobs=n, alpha=0.05, alternative="two-sided"))
    assert not math.isnan(ref)
    assert seed_power.power(es, n) == pytest.approx(ref, abs=1e-9)


def test_power_is_finite_and_monotone_where_statsmodels_is_not():
    assert math.isnan(TTestPower().power(effect_size=6.25, nobs=2, alpha=0.05,
                                         alternative="two-sided"))
    values = [seed_power.power(es, 2) for es in (5.0, 6.25, 8.0, 10.0)]
    assert all(0 < a < b < 1 for a, b in zip(values, values[1:]))


def test_seeds_needed_is_monotone_in_the_effect():
    needed = [seed_power.seeds_needed(4.0, e) for e in (1.0, 2.0, 3.0, 5.0, 8.0, 50.0)]
    assert needed == sorted(needed, reverse=True) and needed[-1] == 2
    n = seed_power.seeds_needed(4.0, 2.0)       # the first seed count at 80 % power
    assert seed_power.power(0.5, n) >= 0.8 > seed_power.power(0.5, n - 1)
    assert seed_power.seeds_needed(float("nan"), 2.0) is None
