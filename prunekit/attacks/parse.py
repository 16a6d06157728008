"""Attack names used by the evaluator, the configs and the CLI.

Valid forms (docs/evaluation.md):

- ``pgd-STEPS-RESTARTS`` -- prunekit's L-inf PGD (Madry et al. 2018), uniform random start per
  restart, step size ``eps / 4`` (2/255 at eps 8/255); ``pgd-STEPS`` means one restart.
  A step size can be given after ``@``: an absolute value (``pgd-50-10@0.0078``), a fraction
  (``pgd-50-10@2/255``) or a multiple of eps (``pgd-50-10@eps/4``, ``pgd-20-1@0.1eps``).
- ``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab``, ``fab-t``, ``square`` -- one attack of the
  official AutoAttack (Croce & Hein, ICML 2020; PyPI ``pyautoattack``) with the parameters of
  its *standard* version (APGD: 100 iterations, 1 restart; APGD-T: 9 target classes; Square:
  5000 queries).
- ``autoattack`` -- AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square).
- ``autoattack-fast`` -- APGD-CE + APGD-T only (CPU-scale runs; not the standard protocol).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from prunekit.attacks.base import NORMS, AttackMeta
from prunekit.config import ConfigError
from prunekit.registry import ATTACKS

__all__ = ["AttackSpec", "AttackNameError", "parse_attack", "VALID_FORMS", "AA_SINGLE"]

#: single pyautoattack attacks, in pyautoattack's own names
AA_SINGLE = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
#: AutoAttack ensembles: name -> pyautoattack attacks in the order AutoAttack runs them
AA_ENSEMBLES = {
    "autoattack": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "autoattack-fast": ("apgd-ce", "apgd-t"),
}
BLACK_BOX = frozenset({"square"})
_LABELS = {("apgd-ce",): "APGD-CE", ("apgd-dlr",): "APGD-DLR", ("apgd-t",): "APGD-T",
           ("fab",): "FAB", ("fab-t",): "FAB-T", ("square",): "Square",
           AA_ENSEMBLES["autoattack"]: "AutoAttack (standard)"}
_COLUMNS = {("apgd-ce",): "apgd_acc", AA_ENSEMBLES["autoattack"]: "aa_acc",
            AA_ENSEMBLES["autoattack-fast"]: "aa_acc"}

VALID_FORMS = ("pgd-STEPS-RESTARTS[@STEP]", *AA_SINGLE, *AA_ENSEMBLES)


class AttackNameError(ConfigError):
    """An attack name that does not parse (a ``ValueError``; one line naming the valid forms)."""


@dataclass(frozen=True)
class AttackSpec:
    """A parsed attack name.

    Attributes:
        name: the name as given (used as the key of ``EvalResult.robust_acc``).
        kind: ``"pgd"`` (prunekit's PGD) or ``"autoattack"`` (official pyautoattack).
        steps, restarts: PGD iterations and restarts (``kind == "pgd"``).
        step_size: absolute PGD step size, or None (then ``step_eps * eps``).
        step_eps: PGD step size as a multiple of eps (default 1/4), used when step_size is None.
        aa_attacks: the pyautoattack attacks run in order (``kind == "autoattack"``).
        version: ``"standard"`` for the full AutoAttack, else ``"custom"``.
    """

    name: str
    kind: Literal["pgd", "autoattack"]
    steps: int = 0
    restarts: int = 0
    step_size: float | None = None
    step_eps: float = 0.25
    aa_attacks: tuple[str, ...] = ()
    version: Literal["standard", "custom"] = "custom"

    @property
    def black_box(self) -> bool:
        """True for a purely black-box attack (Square)."""
        return self.kind == "autoattack" and set(self.aa_attacks) <= BLACK_BOX

    @property
    def ensemble(self) -> bool:
        """True for ``autoattack`` / ``autoattack-fast``."""
        return self.kind == "autoattack" and len(self.aa_attacks) > 1

    @property
    def meta(self) -> AttackMeta:
        """The attack's declared metadata (docs/evaluation.md)."""
        if self.kind == "pgd":
            return AttackMeta(self.name, f"PGD-{self.steps}-{self.restarts}",
                              (self.name.strip().lower(),), column="pgd_acc")
        boxes = {"black" if a in BLACK_BOX else "white" for a in self.aa_attacks}
        return AttackMeta(
            self.name, _LABELS.get(self.aa_attacks, " + ".join(_LABELS[(a,)]
                                                               for a in self.aa_attacks)),
            self.aa_attacks, NORMS, boxes.pop() if len(boxes) == 1 else "mixed",
            any(a.endswith("-t") for a in self.aa_attacks), self.version == "standard",
            _COLUMNS.get(self.aa_attacks), reference=True)

    def pgd_step_size(self, eps: float) -> float:
        """The absolute PGD step size at radius ``eps``."""
        return self.step_size if self.step_size is not None else self.step_eps * eps


_PGD_RE = re.compile(r"^pgd-(\d+)(?:-(\d+))?(?:@(.+))?$")
_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"


def _invalid(name: object, why: str = "") -> AttackNameError:
    extra = f" ({why})" if why else ""
    return AttackNameError(f"unknown attack {name!r}{extra}; valid forms: "
                           f"{', '.join(VALID_FORMS)} (e.g. pgd-50-10, pgd-50-10@2/255)")


def _parse_step(name: str, text: str) -> tuple[float | None, float]:
    """``0.0078`` | ``2/255`` | ``eps/4`` | ``0.25eps`` -> (absolute, multiple of eps)."""
    t = text.strip().lower().replace(" ", "")
    m = re.fullmatch(rf"({_NUM})?\*?eps(?:/({_NUM}))?", t)
    if m and t != "":
        mult = float(m.group(1)) if m.group(1) else 1.0
        div = float(m.group(2)) if m.group(2) else 1.0
        if mult <= 0 or div <= 0:
            raise _invalid(name, "step size must be > 0")
        return None, mult / div
    m = re.fullmatch(rf"({_NUM})(?:/({_NUM}))?", t)
    if not m:
        raise _invalid(name, f"cannot read step size {text!r}")
    val = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
    if val <= 0:
        raise _invalid(name, "step size must be > 0")
    return val, 0.25


def parse_attack(name: str) -> AttackSpec:
    """Parse an attack name (see the module docstring); raises :class:`AttackNameError`
    (a ``ValueError``) naming the valid forms on anything else.

    Example::

        parse_attack("pgd-50-10")        # 50 steps, 10 restarts, step eps/4
        parse_attack("pgd-50-10@2/255")  # explicit step size
        parse_attack("autoattack")       # AutoAttack standard
    """
    if not isinstance(name, str):
        raise _invalid(name)
    key = name.strip().lower()
    if key in AA_ENSEMBLES:
        return AttackSpec(name=name, kind="autoattack", aa_attacks=AA_ENSEMBLES[key],
                          version="standard" if key == "autoattack" else "custom")
    if key in AA_SINGLE:
        return AttackSpec(name=name, kind="autoattack", aa_attacks=(key,))
    m = _PGD_RE.match(key)
    if m:
        steps = int(m.group(1))
        restarts = int(m.group(2)) if m.group(2) is not None else 1
        if steps < 1 or restarts < 1:
            raise _invalid(name, "STEPS and RESTARTS must be >= 1")
        step_size, step_eps = (None, 0.25) if m.group(3) is None else _parse_step(name,
                                                                                  m.group(3))
        return AttackSpec(name=name, kind="pgd", steps=steps, restarts=restarts,
                          step_size=step_size, step_eps=step_eps)
    raise _invalid(name)


def _register() -> None:
    """Make the attack names visible in ``ATTACKS`` (``prunekit list``); building one returns
    its :class:`AttackSpec`."""

    def pgd(steps: int = 50, restarts: int = 10, step_size: float | None = None) -> AttackSpec:
        suffix = "" if step_size is None else f"@{step_size:g}"
        return parse_attack(f"pgd-{steps}-{restarts}{suffix}")

    if "pgd" not in ATTACKS:
        ATTACKS.add("pgd", pgd, aliases=("pgd-50-10",))
    for n in (*AA_SINGLE, *AA_ENSEMBLES):
        if n not in ATTACKS:
            ATTACKS.add(n, lambda _n=n: parse_attack(_n))


_register()
