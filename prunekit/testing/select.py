"""Which contract tests ``prunekit check NAME ...`` runs: the cases whose ``name`` parameter is
one of the given component names (exact match, unlike ``pytest -k``, where ``vgg16`` would
also select ``vgg16-bn-apb``); :func:`contract_families` says in which families a name is
registered. Kept out of the test modules so importing it collects nothing."""
from __future__ import annotations

from typing import Any, Iterable

from prunekit.registry import ATTACKS, DATASETS, LOSSES, MODELS, PRUNERS, SEARCHERS, Registry

__all__ = ["FAMILIES", "contract_families", "SelectNames"]

#: family -> registry of every family with shipped contract tests (prunekit/testing/test_*)
FAMILIES: dict[str, Registry] = {"attack": ATTACKS, "dataset": DATASETS, "loss": LOSSES,
                                 "model": MODELS, "pruner": PRUNERS, "searcher": SEARCHERS}


def contract_families(name: str) -> dict[str, str]:
    """``{family: canonical name}`` for every family ``name`` (or an alias of it) is registered
    in; empty if none."""
    return {fam: reg.canonical(name) for fam, reg in FAMILIES.items()
            if name in reg.names(aliases=True)}


class SelectNames:
    """A pytest plug-in object: keep only the test cases parametrised with ``name`` in
    ``names`` (the rest are reported as deselected)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = set(names)

    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        keep, drop = [], []
        for item in items:
            spec = getattr(item, "callspec", None)
            (keep if spec is not None and spec.params.get("name") in self.names
             else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
