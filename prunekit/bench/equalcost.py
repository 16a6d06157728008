"""Methods compared at the same measured cost (MACs, or non-zero parameters) -- issue 13.

Each method (loss x method x variant) has one measured point per target sparsity: cost = its
mean measured cost relative to the dense model (``rel_macs`` = 1 - macs_reduction, ``rel_params``
= 1 - params_reduction), accuracy = the cell's mean with its 95 % interval. Its
accuracy-vs-cost curve joins those points **linearly in log cost**, sorted by cost. Points whose
costs lie within 2 % of each other are one cost; there the most accurate is kept (weight-masked
models all cost the dense MACs: at matched MACs such a method is its best model at full MACs,
an optimistic choice, stated in the report). A curve is never extended beyond the method's
measured cost range.

The common cost points are every method's measured costs (merged within 2 %); a point is kept
where at least two methods are defined. At a point that a method measured the value is the
measurement; elsewhere it is interpolated (marked ``≈``), and so are the interval's ends
(interpolated from the neighbours' intervals, not a new interval: interpolated values carry no
test -- the paired tests are in the comparison table).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CostPoint", "Curve", "curve", "common_costs", "at_cost", "MERGE_TOL"]

#: costs within this relative distance are the same cost
MERGE_TOL = 0.02


@dataclass(frozen=True)
class CostPoint:
    """One measured point of a method: relative cost, accuracy and its interval (fractions)."""

    cost: float
    acc: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Curve:
    """A method's measured points, sorted by cost, same-cost points merged."""

    points: tuple[CostPoint, ...]

    @property
    def span(self) -> tuple[float, float]:
        """(lowest, highest) measured cost."""
        return self.points[0].cost, self.points[-1].cost


def _same(a: float, b: float) -> bool:
    return abs(math.log(a) - math.log(b)) <= math.log1p(MERGE_TOL)


def curve(points: list[CostPoint]) -> Curve | None:
    """The curve of ``points`` (costs must be > 0; NaN costs or accuracies are dropped)."""
    pts = sorted((p for p in points if p.cost > 0 and not math.isnan(p.cost)
                  and not math.isnan(p.acc)), key=lambda p: p.cost)
    merged: list[CostPoint] = []
    for p in pts:
        if merged and _same(merged[-1].cost, p.cost):
            if p.acc > merged[-1].acc:
                merged[-1] = p
            continue
        merged.append(p)
    return Curve(tuple(merged)) if merged else None


def common_costs(curves: list[Curve]) -> list[float]:
    """Cost points (descending) where at least two curves are defined."""
    costs: list[float] = []
    for c in sorted((p.cost for cv in curves for p in cv.points), reverse=True):
        if not costs or not _same(costs[-1], c):
            costs.append(c)
    return [c for c in costs if sum(at_cost(cv, c) is not None for cv in curves) >= 2]


def at_cost(cv: Curve, cost: float) -> tuple[CostPoint, bool] | None:
    """``(point, measured)`` of ``cv`` at ``cost``: the measured point within 2 %, else the
    log-linear interpolation between its neighbours; None outside the measured range."""
    for p in cv.points:
        if _same(p.cost, cost):
            return p, True
    lo_c, hi_c = cv.span
    if not lo_c < cost < hi_c:
        return None
    xs = np.log([p.cost for p in cv.points])
    x = math.log(cost)

    def interp(vals: list[float]) -> float:
        return float(np.interp(x, xs, vals))

    pt = CostPoint(cost, interp([p.acc for p in cv.points]), interp([p.lo for p in cv.points]),
                   interp([p.hi for p in cv.points]))
    return pt, False
