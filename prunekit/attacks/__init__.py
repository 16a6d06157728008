"""Attacks: one family behind the ``ATTACKS`` registry (docs/evaluation.md, "Attack family").

:class:`Attack` (declared :class:`AttackMeta`, ``run`` -> :class:`AttackOutcome`), name parsing
owned by each attack class (:func:`parse_attack`), prunekit's L-inf PGD (shared by the training
losses and the evaluator), the official AutoAttack attacks and ensembles (``pyautoattack``), and
third-party attacks from the ``prunekit.attacks`` entry-point group.
"""
from __future__ import annotations

from prunekit.attacks.pgd import PGD, LossFn
from prunekit.attacks.base import NORMS, Attack, AttackMeta, AttackOutcome, registered_names
from prunekit.attacks.parse import (AttackNameError, AttackSpec, build_attack, parse_attack,
                                    valid_forms)
from prunekit.attacks.autoattack import AutoAttackRunner
from prunekit.attacks.ensemble import Ensemble, reuse_plan
from prunekit.attacks.pgd_attack import PGDAttack
from prunekit.attacks.autoattack_family import (APGDCE, APGDDLR, APGDT, FAB, FABT,
                                                AutoAttackFast, AutoAttackStandard,
                                                OfficialAttack, Square)
from prunekit.modes import eval_mode  # the mode context every attack runs in (public here too)

__all__ = ["PGD", "LossFn", "eval_mode", "NORMS", "Attack", "AttackMeta", "AttackOutcome",
           "registered_names", "AttackNameError", "AttackSpec", "build_attack",
           "parse_attack", "valid_forms", "AutoAttackRunner", "Ensemble", "reuse_plan",
           "PGDAttack", "OfficialAttack", "APGDCE", "APGDDLR", "APGDT", "FAB", "FABT", "Square",
           "AutoAttackStandard", "AutoAttackFast"]
