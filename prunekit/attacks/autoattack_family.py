"""The official AutoAttack attacks (Croce & Hein, ICML 2020; PyPI ``pyautoattack``) as attacks of
the family: ``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab``, ``fab-t``, ``square`` (each one
pyautoattack attack with the parameters of its *standard* version, through
:class:`~prunekit.attacks.autoattack.AutoAttackRunner`), and the ensembles ``autoattack``
(standard: APGD-CE, APGD-T, FAB-T, Square) and ``autoattack-fast`` (APGD-CE + APGD-T, not the
standard protocol).

An ensemble runs its stages one pyautoattack call each, every stage on the points still robust
after the previous ones -- the loop of ``AutoAttack.run_standard_evaluation``, with the same
seed, batch and parameters per stage, so the flags equal one official call (tested against
``AutoAttack(version="standard")``); after the stages, pyautoattack's own
``checks.check_square_sr`` runs on the per-stage robust accuracies as in the official call.
Running stage by stage is what lets the APGD-CE result be read from AutoAttack's first stage
instead of being run twice (:mod:`prunekit.attacks.ensemble`).
"""
from __future__ import annotations

import logging
import torch
from torch import Tensor, nn

from prunekit.attacks.autoattack import AA_LOGGER, AutoAttackRunner, capture_autoattack_messages
from prunekit.attacks.base import NORMS, Attack, AttackOutcome
from prunekit.attacks.ensemble import Ensemble
from prunekit.registry import ATTACKS

__all__ = ["OfficialAttack", "APGDCE", "APGDDLR", "APGDT", "FAB", "FABT", "Square",
           "AutoAttackEnsemble", "AutoAttackStandard", "AutoAttackFast"]


class OfficialAttack(Attack):
    """One pyautoattack attack (``aa_name``) on all clean-correct points of the batch, with the
    standard version's parameters (APGD 100 iterations, 1 restart; APGD-T 9 targets; FAB-T 9
    targets; Square 5000 queries). pyautoattack reseeds the global RNG with ``seed`` in every
    ``perturb`` (prunekit restores the RNG afterwards), so the result depends on the seed only."""

    norms = NORMS
    reference = True
    seeded = True

    @property
    def aa_name(self) -> str:
        """pyautoattack's name of the attack: the registered name."""
        return self.canonical()

    def run(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackOutcome:
        return AutoAttackRunner(self.eps, norm=self.norm, attacks=(self.aa_name,),
                                version="custom", seed=self.seed).run(model, x, y)


@ATTACKS.register("apgd-ce")
class APGDCE(OfficialAttack):
    """APGD with the cross-entropy loss (Croce & Hein 2020, alg. 1; momentum 0.75)."""

    label = "APGD-CE"
    column = "apgd_acc"


@ATTACKS.register("apgd-dlr")
class APGDDLR(OfficialAttack):
    """APGD with the scale-invariant DLR loss (Croce & Hein 2020, eq. 6)."""

    label = "APGD-DLR"


@ATTACKS.register("apgd-t")
class APGDT(OfficialAttack):
    """Targeted APGD with the targeted DLR loss, 9 target classes (fewer with < 10 classes)."""

    label = "APGD-T"
    targeted = True


@ATTACKS.register("fab")
class FAB(OfficialAttack):
    """FAB, untargeted (Croce & Hein, ICML 2020)."""

    label = "FAB"


@ATTACKS.register("fab-t")
class FABT(OfficialAttack):
    """FAB, targeted, 9 target classes."""

    label = "FAB-T"
    targeted = True


@ATTACKS.register("square")
class Square(OfficialAttack):
    """Square Attack (Andriushchenko et al., ECCV 2020): score-based black box, 5000 queries."""

    label = "Square"
    box = "black"


class AutoAttackEnsemble(Ensemble):
    """An AutoAttack ensemble: official stages, then pyautoattack's Square check."""

    reference = True
    column = "aa_acc"

    def finish(self, robust_after: dict[str, float], model: nn.Module, x: Tensor,
               y: Tensor) -> list[str]:
        from pyautoattack import checks

        with torch.no_grad():
            clean = float((model(x).argmax(1) == y).float().mean()) if len(x) else 0.0
        with capture_autoattack_messages() as messages:
            checks.check_square_sr({"clean": clean, **robust_after},
                                   logger=logging.getLogger(AA_LOGGER))
        return messages


@ATTACKS.register("autoattack")
class AutoAttackStandard(AutoAttackEnsemble):
    """AutoAttack standard: APGD-CE -> APGD-T -> FAB-T -> Square (the standard protocol)."""

    components = ("apgd-ce", "apgd-t", "fab-t", "square")
    label = "AutoAttack (standard)"
    standard = True


@ATTACKS.register("autoattack-fast")
class AutoAttackFast(AutoAttackEnsemble):
    """APGD-CE -> APGD-T only: for CPU-scale runs; *not* the standard protocol (say so)."""

    components = ("apgd-ce", "apgd-t")
    label = "APGD-CE + APGD-T"
