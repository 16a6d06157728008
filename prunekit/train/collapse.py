"""Chance-level collapse: a model whose accuracy is no better than guessing, or whose verified
(bound-based) training loss is stuck at ``ln K`` (uniform output over the eps-ball).

Certified training can drive a network to a constant output, whose robust cross-entropy is
exactly ``ln K`` (every margin bound 0); issue 21 measured it (fmnist-certify: all seven
CROWN-IBP rows at 8-13.5 % clean). Such a row is not a result, so the run carries a warning
(the ``warnings`` of its ``method_summary``, a ``†`` in the report; prunekit.bench.cells).

Criteria (generic: any loss, any method, any number of classes ``K``; ``p = 1/K``):

* **at chance**: ``acc <= p + max(3 * sqrt(p (1 - p) / n), p (1 - p) / 2)`` -- three binomial
  standard errors of a guessing classifier on ``n`` examples, at least half of ``p (1 - p)``
  (4.5 points for K = 10: 14.5 %; 16.4 % on 200 test images);
* **robust loss at ln K**: the stage logs ``robust_loss`` and ``verified_acc`` (IBP /
  CROWN-IBP), ``0.9 ln K <= robust_loss <= 1.15 ln K`` and ``verified_acc`` at chance.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["chance_threshold", "at_chance", "stats_collapse", "eval_collapse",
           "is_collapse_warning"]

#: the robust-loss band around ln K that counts as "stuck" (fractions of ln K)
ROBUST_LOSS_BAND = (0.9, 1.15)


def chance_threshold(num_classes: int, n: int) -> float:
    """The highest accuracy still counted as chance for ``num_classes`` classes on ``n``
    examples (module docstring)."""
    p = 1.0 / max(int(num_classes), 2)
    se = math.sqrt(p * (1 - p) / max(int(n), 1))
    return p + max(3 * se, p * (1 - p) / 2)


def at_chance(acc: float, num_classes: int, n: int) -> bool:
    """Whether accuracy ``acc`` (a fraction) on ``n`` examples is at chance level."""
    return float(acc) <= chance_threshold(num_classes, n)


def is_collapse_warning(text: str) -> bool:
    """Whether a method-summary warning is one of this module's (stage prefix allowed)."""
    return any(m in text for m in ("collapsed to chance level", "is at chance level",
                                   "stuck at a uniform output"))


def _pct(v: float) -> str:
    return f"{100 * float(v):.1f} %"


def stats_collapse(stats: Mapping[str, Any], num_classes: int, n: int) -> list[str]:
    """Warnings for one training stage from its last epoch's averaged stats (``clean_acc``;
    ``robust_loss`` with ``verified_acc`` for verified training) over ``n`` examples."""
    out: list[str] = []
    k = int(num_classes)
    clean = stats.get("clean_acc")
    if isinstance(clean, (int, float)) and at_chance(clean, k, n):
        out.append(f"training collapsed to chance level: last-epoch clean accuracy "
                   f"{_pct(clean)} <= {_pct(chance_threshold(k, n))} (chance 1/{k} = "
                   f"{_pct(1 / k)}, {n} examples)")
    rl, ver = stats.get("robust_loss"), stats.get("verified_acc")
    if isinstance(rl, (int, float)) and isinstance(ver, (int, float)):
        lo, hi = (f * math.log(k) for f in ROBUST_LOSS_BAND)
        if lo <= rl <= hi and at_chance(ver, k, n):
            out.append(f"verified training is stuck at a uniform output: last-epoch robust "
                       f"loss {rl:.3f} ~ ln {k} = {math.log(k):.3f}, verified "
                       f"{_pct(ver)} (the bounds say nothing; see docs/training.md, "
                       f"certified training)")
    return out


def eval_collapse(clean_acc: float | None, num_classes: int, n: int | None) -> list[str]:
    """The warning for a final model whose test clean accuracy on ``n`` images is at chance."""
    if clean_acc is None or not n or not at_chance(clean_acc, num_classes, n):
        return []
    return [f"the final model is at chance level: clean accuracy {_pct(clean_acc)} on {n} "
            f"test images <= {_pct(chance_threshold(num_classes, n))} (chance 1/"
            f"{num_classes} = {_pct(1 / num_classes)}); its robust / certified figures are "
            f"not a result"]
