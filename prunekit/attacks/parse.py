"""Attack names -> attacks, through the ``ATTACKS`` registry.

Every registered attack class reads its own names (:meth:`Attack.parse`): ``pgd-50-10@2/255`` is
parsed by the PGD attack, ``apgd-ce`` matches the APGD-CE class, a plug-in's forms by the
plug-in. :func:`parse_attack` asks every class and takes the one that accepts the name; a name no
class accepts is an :class:`AttackNameError` listing every class's forms (docs/evaluation.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from prunekit.attacks.base import Attack, AttackMeta, registered_names
from prunekit.errors import ConfigError
from prunekit.registry import ATTACKS

__all__ = ["AttackSpec", "AttackNameError", "parse_attack", "build_attack", "valid_forms",
           "invalid_attack"]

log = logging.getLogger(__name__)


class AttackNameError(ConfigError):
    """An attack name that does not parse (a ``ValueError``; one line naming the valid forms)."""


def valid_forms() -> list[str]:
    """Every registered attack's name forms (built-ins and plug-ins)."""
    out: list[str] = []
    for name in ATTACKS.names():
        out.extend(f for f in ATTACKS.get(name).name_forms() if f not in out)
    return out


def invalid_attack(name: object, why: str = "") -> AttackNameError:
    """The one-line error for a name no attack accepts (``why``: what is wrong with it)."""
    extra = f" ({why})" if why else ""
    return AttackNameError(f"unknown attack {name!r}{extra}; valid forms: "
                           f"{', '.join(valid_forms())} (e.g. pgd-50-10, pgd-50-10@2/255)")


@dataclass(frozen=True)
class AttackSpec:
    """A parsed attack name: the class that accepted it and its constructor arguments.

    Example::

        spec = parse_attack("pgd-50-10@2/255")
        attack = spec.build(eps=8 / 255)        # a PGDAttack, 50 steps, 10 restarts
        attack.meta.label                       # 'PGD-50-10 (step 0.00784)'
    """

    name: str
    cls: type[Attack]
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, eps: float, norm: str = "Linf", seed: int = 0) -> Attack:
        """The configured attack (``ValueError`` for an unsupported norm)."""
        return self.cls(eps, norm=norm, seed=seed, name=self.name, **self.params)

    @property
    def meta(self) -> AttackMeta:
        """The declared metadata, which does not depend on eps or seed (built at eps 0 with
        the first norm the attack supports)."""
        return self.build(0.0, norm=self.cls.supported_norms()[0]).meta


def parse_attack(name: str) -> AttackSpec:
    """Parse an attack name; raises :class:`AttackNameError` (a ``ValueError``) naming the
    valid forms on anything no registered attack accepts.

    Example::

        parse_attack("pgd-50-10")        # 50 steps, 10 restarts, step eps/4
        parse_attack("pgd-50-10@2/255")  # explicit step size
        parse_attack("autoattack")       # AutoAttack standard
    """
    if not isinstance(name, str) or not name.strip():
        raise invalid_attack(name)
    key = name.strip().lower()
    hits: list[tuple[str, type[Attack], dict[str, Any]]] = []
    for cname in ATTACKS.names():
        cls = ATTACKS.get(cname)
        try:
            params = cls.parse(key)
        except AttackNameError:
            raise            # a malformed name of this attack's own form
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break the others
            log.warning("attack %r: parse(%r) failed (%s: %s); skipped", cname, key,
                        type(exc).__name__, exc)
            continue
        if params is not None:
            hits.append((cname, cls, dict(params)))
    if len(hits) > 1:  # a registered name beats a pattern
        exact = [h for h in hits if key in registered_names(h[1])]
        if len(exact) != 1:
            raise AttackNameError(f"attack name {name!r} is ambiguous: accepted by "
                                  f"{', '.join(h[0] for h in hits)}")
        hits = exact
    if not hits:
        raise invalid_attack(name)
    return AttackSpec(name=name, cls=hits[0][1], params=hits[0][2])


def build_attack(name: str | AttackSpec, eps: float, norm: str = "Linf",
                 seed: int = 0) -> Attack:
    """The configured attack for a name or spec (see :func:`parse_attack`)."""
    spec = parse_attack(name) if isinstance(name, str) else name
    return spec.build(eps, norm=norm, seed=seed)
