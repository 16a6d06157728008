"""Provenance of plug-ins: which installed distribution (and version) provided each component a
run used -- model, dataset, loss, pruner or searcher, attacks (the ``plugins`` column of results
schema v3, ``run.json`` and the per-example files' meta; docs/results-schema.md).

A component's distribution is found from the module that defines it (for a model factory wrapped
by :func:`prunekit.models.wrap_factory`: the factory's; for ``torchvision:<name>``: torchvision;
for ``package.module:factory``: that package), mapped to its distribution by
``importlib.metadata.packages_distributions``. A module no installed distribution provides (a
test's or a script's own) is recorded as ``<module> (not installed)``.
"""
from __future__ import annotations

import functools
import inspect
import logging
from importlib import metadata
from typing import Any, Sequence

from prunekit.attacks.parse import parse_attack
from prunekit.registry import ATTACKS, DATASETS, LOSSES, MODELS, PRUNERS, SEARCHERS

__all__ = ["distribution_of", "run_plugins", "component_plugins", "NOT_INSTALLED"]

log = logging.getLogger(__name__)
NOT_INSTALLED = "(not installed)"


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _from_entry_points(top: str) -> str:
    """The distribution declaring a ``prunekit.*`` entry point into package ``top`` (a
    distribution without a RECORD / top_level.txt, e.g. an egg-link)."""
    for reg in (MODELS, DATASETS, LOSSES, PRUNERS, SEARCHERS, ATTACKS):
        for ep in metadata.entry_points(group=reg.entry_point_group):
            if ep.value.split(":")[0].split(".")[0] == top and ep.dist is not None:
                return f"{ep.dist.metadata['Name']} {ep.dist.version}"
    return ""


def _dist_of_module(module: str) -> str:
    top = module.split(".")[0]
    for dist in _packages().get(top, []):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:  # pragma: no cover - a stale record
            continue
    return _from_entry_points(top) or f"{module} {NOT_INSTALLED}"


def distribution_of(obj: Any) -> str:
    """``"distribution version"`` of the package defining ``obj`` (a class or builder)."""
    obj = getattr(obj, "factory", obj)  # a wrapped model factory
    obj = inspect.unwrap(obj) if callable(obj) else obj
    module = obj.__name__ if inspect.ismodule(obj) else (
        getattr(obj, "__module__", None) or type(obj).__module__)
    return _dist_of_module(module)


def _model_dist(name: str) -> str:
    if name.startswith("torchvision:"):
        return _dist_of_module("torchvision")
    if ":" in name and name not in MODELS.names(aliases=True):
        return _dist_of_module(name.split(":", 1)[0])
    return distribution_of(MODELS.get(name))


def _safe(fn: Any, name: str) -> str:
    try:
        return f"{name}={fn(name)}"
    except Exception as exc:  # noqa: BLE001 - provenance must never fail a run
        log.debug("plugins: no distribution for %r: %s", name, exc)
        return f"{name}=?"


def run_plugins(cfg: Any) -> dict[str, Any]:
    """``{"model": "vgg-small=prunekit 0.3.0", "dataset": ..., "loss": ..., "pruner" (or
    "searcher"): ..., "attacks": ["pgd-50-10=prunekit 0.3.0", ...]}`` for a RunConfig."""
    return component_plugins(model=cfg.model.name, dataset=cfg.data.dataset, loss=cfg.loss.name,
                             method=cfg.method, attacks=cfg.eval.attacks)


def component_plugins(model: str | None = None, dataset: str | None = None,
                      loss: str | None = None, method: str | None = None,
                      attacks: Sequence[str] = ()) -> dict[str, Any]:
    """The same record for the components given (``prunekit eval``: model, dataset, attacks);
    a family not given is left out."""
    out: dict[str, Any] = {}
    if model:
        out["model"] = _safe(_model_dist, model)
    if dataset:
        out["dataset"] = _safe(lambda n: distribution_of(DATASETS.get(n)), dataset)
    if loss:
        out["loss"] = _safe(lambda n: distribution_of(LOSSES.get(n)), loss)
    if method:
        family, reg = ("searcher", SEARCHERS) if method in SEARCHERS else ("pruner", PRUNERS)
        out[family] = _safe(lambda n: distribution_of(reg.get(n)), method)
    out["attacks"] = [_safe(lambda n: distribution_of(parse_attack(n).cls), a) for a in attacks]
    return out
