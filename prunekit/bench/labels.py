"""Names the report prints: method order and labels from the pruner registry, attack labels from
the attacks' own metadata, and the accuracies of one results row by attack.

Methods (issue 12: no hard-coded method list). A pruner class may declare, optionally,

- ``label`` (str): the name printed in tables and plots (default: the name in the CSV);
- ``order`` (int, default 0): position within its granularity group (lower first).

Rows are sorted by granularity (``none`` = dense, then ``channel``, then ``weight``, then
anything else), then ``order``, then the registered (canonical) name. A method that is not
registered here (a plug-in not installed where the report runs) falls back to the CSV's
``granularity`` column and its own name.

Attacks: the label of the attack's declared metadata (prunekit.attacks ``AttackMeta``): the one
stored in the per-example file when there is one, else the one of its definition
(``APGD-CE + APGD-T`` for ``autoattack-fast``, ``AutoAttack (standard)`` for ``autoattack``),
else the name itself.
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any, Mapping

from prunekit.attacks.parse import AttackNameError, parse_attack
from prunekit.eval.examples import CERTIFIED  # report name of a certificate: certified:ibp
from prunekit.registry import PRUNERS, SEARCHERS, RegistryError

__all__ = ["method_sort_key", "method_label", "attack_label", "attack_caveat", "row_accuracies",
           "CLEAN", "WORST"]

log = logging.getLogger(__name__)

#: flag-row / metric names of the clean accuracy and of the per-example worst case
CLEAN, WORST = "clean", "worst"
_GRANULARITY_RANK = {"none": 0, "channel": 1, "weight": 2, "architecture": 3}


def _pruner_class(method: str) -> Any:
    try:
        if method in PRUNERS:
            return PRUNERS.get(method)
        return SEARCHERS.get(method) if method in SEARCHERS else None  # e.g. lrnas
    except RegistryError:
        return None


def method_sort_key(method: str, granularity: str = "") -> tuple[int, float, str]:
    """Sort key of a method: (granularity rank, declared ``order``, canonical name)."""
    cls = _pruner_class(method)
    gran = getattr(cls, "granularity", None) or granularity
    order = getattr(cls, "order", 0)
    order = order if isinstance(order, (int, float)) and not isinstance(order, bool) else 0
    name = PRUNERS.canonical(method) if method in PRUNERS else method
    return _GRANULARITY_RANK.get(str(gran), len(_GRANULARITY_RANK)), float(order), name


def method_label(method: str, variant: str = "") -> str:
    """Printed name: the class's declared ``label`` (else the name), plus the grid variant."""
    label = getattr(_pruner_class(method), "label", None)
    label = label if isinstance(label, str) and label else method
    return f"{label} ({variant})" if variant else label


def _declared(name: str, meta: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The attack's metadata record: the stored one, else its definition's (``AttackSpec.meta``,
    prunekit.attacks), else {} for a name this prunekit cannot parse."""
    if meta:
        return meta
    try:
        return parse_attack(name).meta.record()
    except (AttackNameError, ValueError):
        return {}


def attack_label(name: str, meta: Mapping[str, Any] | None = None) -> str:
    """Column label of an attack: its declared ``label`` (``APGD-CE + APGD-T`` for
    ``autoattack-fast``), else the name itself."""
    if name == CLEAN:
        return "clean"
    if name == WORST:
        return "worst case"
    label = _declared(name, meta).get("label")
    return label if isinstance(label, str) and label else name


def attack_caveat(name: str, meta: Mapping[str, Any] | None = None) -> str:
    """``"not the standard AutoAttack"`` for an ensemble that is not a standard protocol (its
    metadata: several ``components``, ``standard`` false); else empty."""
    rec = _declared(name, meta)
    ensemble = len(rec.get("components") or ()) > 1
    return "not the standard AutoAttack" if ensemble and not rec.get("standard") else ""


def _num(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def row_accuracies(row: Mapping[str, Any]) -> dict[str, float]:
    """``{"clean": acc, <attack>: acc ..., "worst": acc}`` of one results row, attacks in run
    order: from the ``robust_acc`` JSON column (schema v2), else -- results written before it --
    from the fixed columns as docs/results-schema.md defines them (``pgd_acc`` = the first
    ``pgd-*`` attack, ``apgd_acc`` = ``apgd-ce``, ``aa_acc`` = ``autoattack``, or
    ``autoattack-fast`` if only that ran)."""
    out = {CLEAN: _num(row.get("clean_acc"))}
    text = row.get("robust_acc") or ""
    robust: dict[str, Any] = {}
    if isinstance(text, str) and text.strip():
        try:
            robust = json.loads(text)
        except json.JSONDecodeError:
            log.warning("run %s: unreadable robust_acc %r", row.get("run_id"), text[:60])
    if robust:
        out.update({str(k): _num(v) for k, v in robust.items()})
    else:
        attacks = [a for a in str(row.get("attacks") or "").split(";") if a]
        aa = "autoattack" if "autoattack" in attacks else "autoattack-fast"
        pgd = next((a for a in attacks if a.startswith("pgd-")), None)
        for a in attacks:
            col = ("pgd_acc" if a == pgd else "apgd_acc" if a == "apgd-ce"
                   else "aa_acc" if a == aa else None)
            if col is not None:
                out[a] = _num(row.get(col))
    out[WORST] = _num(row.get("worst_acc"))
    out.update(certified_accuracies(row))
    return {k: v for k, v in out.items() if not math.isnan(v)}




def certified_accuracies(row: Mapping[str, Any]) -> dict[str, float]:
    """``{"certified:<metric>": acc}`` from the ``certified_acc`` JSON column (schema v3;
    never part of ``worst``)."""
    text = row.get("certified_acc") or ""
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        cert = json.loads(text)
    except json.JSONDecodeError:
        log.warning("run %s: unreadable certified_acc %r", row.get("run_id"), text[:60])
        return {}
    return {CERTIFIED + str(k): _num(v) for k, v in cert.items()}
