"""Attacks: prunekit's L-inf PGD (shared by the training losses and the evaluator), attack-name
parsing, and wrappers around the official AutoAttack (``pyautoattack``)."""
from __future__ import annotations

from prunekit.attacks.pgd import PGD, LossFn, eval_mode
from prunekit.attacks.parse import AttackNameError, AttackSpec, VALID_FORMS, parse_attack
from prunekit.attacks.autoattack import AttackOutcome, AutoAttackRunner
from prunekit.attacks.runner import AttackRunner, PGDRunner, build_attack

__all__ = ["PGD", "LossFn", "eval_mode", "AttackSpec", "AttackNameError", "VALID_FORMS",
           "parse_attack", "AttackOutcome", "AutoAttackRunner", "AttackRunner", "PGDRunner",
           "build_attack"]
