"""Command-line overrides and filters: ``--set key.sub=value`` (written with
:func:`prunekit.config.set_dotted`, validated like the config or grid they change) and
``--only key=value`` (run a subset of an expanded grid). docs/bench.md, "Overrides and subsets".
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterable, Mapping, Sequence

from prunekit.config import set_dotted
from prunekit.errors import ConfigError
from prunekit.registry import PRUNERS

__all__ = ["parse_assignment", "apply_overrides", "override_grid", "parse_only", "filter_runs"]


def parse_assignment(item: str, flag: str = "--set") -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)``, the value parsed as YAML (``2`` is an int, ``[a, b]``
    a list, ``null`` None; anything YAML cannot parse stays a string)."""
    import yaml

    key, sep, raw = str(item).partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{flag} expects KEY=VALUE with a dotted KEY, got {item!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(d: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` strings to a config mapping (in place; returned for chaining)."""
    for item in overrides:
        set_dotted(d, *parse_assignment(item))
    return d


def override_grid(grid: Any, overrides: Sequence[str]) -> Any:
    """A copy of ``grid`` (a :class:`prunekit.bench.grid.Grid`) with ``--set`` applied to its
    ``base``. A key that is a grid axis is refused (the axis would overwrite it at every point;
    ``--only`` selects axis values). Validation happens when the grid is expanded."""
    if not overrides:
        return grid
    base = copy.deepcopy(grid.base)
    for item in overrides:
        key, value = parse_assignment(item)
        if key in grid.axes:
            raise ConfigError(f"--set {key}: {key!r} is an axis of grid {grid.name!r} (values "
                              f"{grid.axes[key]}); use --only {key}=VALUE to run a subset")
        set_dotted(base, key, value)
    return dataclasses.replace(grid, base=base)


def parse_only(items: Sequence[str]) -> dict[str, list[Any]]:
    """``--only`` strings -> ``{dotted key: accepted values}``; a repeated key accepts any of its
    values, a YAML list value (``method=[d2bc, hydra]``) several at once."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, value = parse_assignment(item, "--only")
        out.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    return out


def _get(d: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _same(key: str, have: Any, want: Any) -> bool:
    if key == "method" and isinstance(have, str) and isinstance(want, str):
        if have in PRUNERS and want in PRUNERS:
            return PRUNERS.canonical(have) == PRUNERS.canonical(want)
    if isinstance(have, (int, float)) and isinstance(want, (int, float)) \
            and not isinstance(have, bool) and not isinstance(want, bool):
        return float(have) == float(want)
    return have == want


def filter_runs(runs: Sequence[Any], only: Mapping[str, Sequence[Any]]) -> list[Any]:
    """The runs whose config matches every ``only`` key (one of its values), renumbered
    0..k-1 in grid order (so shards and array tasks split the subset evenly). A key that is no
    config field, or a filter that matches nothing, is a :class:`ConfigError` naming the values
    the grid has."""
    if not only:
        return list(runs)
    dicts = [r.config.to_dict() for r in runs]
    for key, wanted in only.items():
        found = [_get(d, key) for d in dicts]
        if not any(ok for ok, _ in found):
            raise ConfigError(f"--only {key}: no such config field in this grid's runs")
    keep = [r for r, d in zip(runs, dicts)
            if all(any(_same(k, _get(d, k)[1], w) for w in ws) for k, ws in only.items())]
    if not keep:
        have = {k: sorted({str(_get(d, k)[1]) for d in dicts}) for k in only}
        desc = "; ".join(f"{k} in this grid: {', '.join(v)}" for k, v in have.items())
        wanted_s = " ".join(f"{k}={v}" for k, vs in only.items() for v in vs)
        raise ConfigError(f"--only {wanted_s} matches none of the {len(runs)} runs ({desc})")
    return [dataclasses.replace(r, index=i) for i, r in enumerate(keep)]
