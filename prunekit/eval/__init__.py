"""Robustness evaluation: :class:`RobustnessEvaluator` (clean, PGD-STEPS-RESTARTS, official
APGD / AutoAttack), :class:`EvalResult`, and the sanity checks (docs/evaluation.md)."""
from __future__ import annotations

from prunekit.eval.checks import CheckFailure
from prunekit.eval.evaluator import DEFAULT_ATTACKS, RobustnessEvaluator, evaluate
from prunekit.eval.result import EvalResult

__all__ = ["RobustnessEvaluator", "EvalResult", "CheckFailure", "DEFAULT_ATTACKS", "evaluate"]
