"""Benchmark grids: a base run config plus axes, expanded into validated, named runs.

A grid YAML (docs/bench.md)::

    name: fmnist
    base: {data: {dataset: fashion_mnist}, d2bc: {thres: 0.5}, ...}   # a RunConfig dict
    axes:                       # dotted field path -> list of values (cartesian product)
      method: [dense, d2bc, hydra, admm]
      loss.name: [trades, mart]
      sparsity: [0.5, 0.9, 0.99]
    zip: [[sparsity, d2bc.gamma]]          # optional: axes in one group vary together
    rules:                                  # optional, applied in order to every point
      - {where: {method: dense}, set: {sparsity: 0.0}}
    exclude: [{method: admm, sparsity: 0.99}]   # optional: drop matching points
    include: [{method: hydra-channel, sparsity: 0.9}]   # optional: extra points
    bench: {table: true, format: md}       # optional runner / report settings (versus:
                                           # the report's reference method(s))

Points whose resolved configs are identical (same ``config_hash``) are kept once, so
``dense`` x three sparsities collapses to one dense run after the rule above. Every point is
validated with :meth:`RunConfig.from_dict` before anything runs; an error names the point.
"""
from __future__ import annotations

import copy
import itertools
import logging
import os
import re
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from prunekit.config import RunConfig, load_yaml, set_dotted
from prunekit.errors import ConfigError
from prunekit.registry import PRUNERS

__all__ = ["Grid", "GridRun", "expand", "load_grid", "shard_runs", "parse_shard", "run_id_for",
           "resolve_data_root"]

log = logging.getLogger(__name__)

_GRID_KEYS = {"name", "base", "axes", "zip", "rules", "exclude", "include", "bench", "launcher"}
_BENCH_KEYS = {"table", "format", "run_fn", "shard_by", "versus"}
#: the report formats of the final table (prunekit.bench.report.report)
BENCH_FORMATS = ("md", "latex")


@dataclass
class Grid:
    """A parsed (not yet expanded) grid; ``path`` is the YAML file it came from, if any."""

    name: str
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    zip: list[list[str]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    include: list[dict[str, Any]] = field(default_factory=list)
    bench: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    #: cluster resources for ``--launcher`` (keys checked there: prunekit.bench.launch)
    launcher: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str | Path | None = None) -> "Grid":
        """Check the grid's own structure (not the run configs: see :func:`expand`)."""
        where = f"{path}: " if path else ""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}a grid must be a mapping")
        unknown = set(d) - _GRID_KEYS
        if unknown:
            raise ConfigError(f"{where}unknown grid key(s) {', '.join(sorted(map(str, unknown)))}; "
                              f"valid: {', '.join(sorted(_GRID_KEYS))}")
        name = d.get("name") or (Path(path).stem if path else "grid")
        base = d.get("base") or {}
        if not isinstance(base, Mapping):
            raise ConfigError(f"{where}grid 'base' must be a mapping (a run config)")
        axes = d.get("axes") or {}
        if not isinstance(axes, Mapping):
            raise ConfigError(f"{where}grid 'axes' must map a dotted field path to a list")
        axes_out: dict[str, list[Any]] = {}
        for key, values in axes.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ConfigError(f"{where}axis {key!r} must be a non-empty list of values")
            axes_out[str(key)] = list(values)
        zips = d.get("zip") or []
        if not isinstance(zips, list) or not all(isinstance(g, list) for g in zips):
            raise ConfigError(f"{where}grid 'zip' must be a list of lists of axis names")
        seen: set[str] = set()
        for group in zips:
            for a in group:
                if a not in axes_out:
                    raise ConfigError(f"{where}zip names {a!r}, which is not an axis; axes: "
                                      f"{', '.join(axes_out)}")
                if a in seen:
                    raise ConfigError(f"{where}axis {a!r} appears in two zip groups")
                seen.add(a)
            if len({len(axes_out[a]) for a in group}) > 1:
                raise ConfigError(f"{where}zipped axes {', '.join(group)} must have equal lengths")
        rules = d.get("rules") or []
        if not isinstance(rules, list):
            raise ConfigError(f"{where}grid 'rules' must be a list of {{where: {{...}}, "
                              f"set: {{...}}}}")
        for r in rules:
            if (not isinstance(r, Mapping) or set(r) - {"where", "set"} or "set" not in r
                    or not isinstance(r["set"], Mapping)
                    or not isinstance(r.get("where") or {}, Mapping)):
                raise ConfigError(f"{where}each rule must be {{where: {{...}}, set: {{...}}}} "
                                  f"(both mappings of dotted field paths), got {r!r}")
        for key in ("exclude", "include"):
            items = d.get(key) or []
            if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
                raise ConfigError(f"{where}grid {key!r} must be a list of mappings")
        bench = d.get("bench") or {}
        if not isinstance(bench, Mapping):
            raise ConfigError(f"{where}grid 'bench' must be a mapping (docs/bench.md)")
        bench = dict(bench)
        bad = set(bench) - _BENCH_KEYS
        if bad:
            raise ConfigError(f"{where}unknown bench key(s) {', '.join(sorted(bad))}; valid: "
                              f"{', '.join(sorted(_BENCH_KEYS))}")
        _check_bench(bench, where)
        launcher = d.get("launcher") or {}
        if not isinstance(launcher, Mapping):
            raise ConfigError(f"{where}grid 'launcher' must be a mapping (docs/bench.md)")
        return cls(name=str(name), base=copy.deepcopy(dict(base)), axes=axes_out,
                   zip=[list(g) for g in zips], rules=[dict(r) for r in rules],
                   exclude=[dict(e) for e in d.get("exclude") or []],
                   include=[dict(i) for i in d.get("include") or []], bench=bench,
                   path=Path(path) if path else None, launcher=dict(launcher))


def _check_bench(bench: Mapping[str, Any], where: str) -> None:
    """The ``bench:`` settings the runner only uses at the end (the final table), checked now so
    that a bad one fails before the grid runs, not after."""
    if "format" in bench and bench["format"] not in BENCH_FORMATS:
        raise ConfigError(f"{where}bench format must be one of {', '.join(BENCH_FORMATS)}, got "
                          f"{bench['format']!r}")
    if "table" in bench and not isinstance(bench["table"], bool):
        raise ConfigError(f"{where}bench table must be true or false, got {bench['table']!r}")
    if "shard_by" in bench and bench["shard_by"] not in ("run", "pretrain"):
        raise ConfigError(f"{where}bench shard_by must be run or pretrain, got "
                          f"{bench['shard_by']!r}")
    versus = bench.get("versus")
    if versus is not None and not (isinstance(versus, str) or (
            isinstance(versus, list) and all(isinstance(v, str) for v in versus))):
        raise ConfigError(f"{where}bench versus must be a method name, a comma-separated string "
                          f"or a list of method names, got {versus!r}")
    if "run_fn" in bench and not isinstance(bench["run_fn"], str):
        raise ConfigError(f"{where}bench run_fn must be a 'module:function' string, got "
                          f"{bench['run_fn']!r}")


@dataclass
class GridRun:
    """One expanded grid point."""

    index: int               #: position in the expanded, ordered grid
    run_id: str              #: readable and deterministic: ``<loss>-<method>-s<sp>-seed<k>-<hash8>``
    config: RunConfig        #: the validated config (``data.root`` as written in the grid)
    point: dict[str, Any]    #: the dotted-path values that define this point (axes + rules)
    variant: str = ""        #: axis values not shown as table rows/columns, e.g. "d2bc.thres=0.2"

    @property
    def pretrain_hash(self) -> str:
        return self.config.pretrain_hash()


# --------------------------------------------------------------------------------------------
def load_grid(path: str | Path) -> Grid:
    """Read and structurally check a grid YAML file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"grid file not found: {p}")
    return Grid.from_dict(load_yaml(str(p)), path=p)


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _matches(cfg: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """``where`` values are scalars (equality) or lists (membership)."""
    for key, want in where.items():
        have = _get(cfg, key)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def _axis_points(grid: Grid) -> Iterable[dict[str, Any]]:
    """Cartesian product over axis groups (a zip group is one axis), in YAML order."""
    zipped = {a: tuple(g) for g in grid.zip for a in g}
    groups: list[tuple[str, ...]] = []
    for a in grid.axes:
        g = zipped.get(a, (a,))
        if g not in groups:
            groups.append(g)
    choices = [[dict(zip(g, vals)) for vals in zip(*(grid.axes[a] for a in g))] for g in groups]
    for combo in itertools.product(*choices):
        point: dict[str, Any] = {}
        for part in combo:
            point.update(part)
        yield point


def _fmt_point(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(base)"


#: axes every run id shows anyway (``<loss>-<method>-s<sp>-seed<k>[-f<fold>]``)
_ID_AXES = frozenset({"loss.name", "method", "sparsity", "seed", "data.fold"})


def _id_part(key: str, value: Any) -> str:
    """One run-id segment of a varying axis: the model / dataset name itself, ``eps0.0314``,
    else the key's last component and the value (``thres0.2``, ``epochs20``)."""
    if key in ("model.name", "data.dataset"):
        return str(value)
    last = key.split(".")[-1]
    return f"{last}{value:.4g}" if isinstance(value, float) else f"{last}{value}"


def run_id_for(cfg: RunConfig, varying: Mapping[str, Any] | None = None) -> str:
    """``<loss>-<method>[-<model>][-<dataset>]-s<sparsity>-seed<seed>[-f<fold>][-<axis><value>
    ...]-<config_hash[:8]>``: ``varying`` = this run's values of the grid axes that take several
    values (model and dataset right after the method, other axes after the seed), so two runs
    that differ only in a grid axis differ in more than the hash. A grid none of whose axes
    beyond loss, method, sparsity, seed and fold varies keeps the ids it always had."""
    varying = dict(varying or {})
    parts = [cfg.loss.name, cfg.method]
    parts += [_id_part(k, varying.pop(k)) for k in ("model.name", "data.dataset") if k in varying]
    parts += [f"s{cfg.sparsity:g}", f"seed{cfg.seed}"]
    if cfg.data.fold is not None:
        parts.append(f"f{cfg.data.fold}")
    parts += [_id_part(k, v) for k, v in varying.items()]
    parts.append(cfg.config_hash()[:8])
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", "-".join(parts))


def expand(grid: Grid | Mapping[str, Any] | str | Path) -> list[GridRun]:
    """Expand a grid into validated runs, deduplicated by config hash and ordered so that runs
    sharing a dense pretraining (same ``pretrain_hash``) are adjacent (first-seen group order,
    grid order within a group). Raises :class:`ConfigError` naming the first bad point."""
    if isinstance(grid, (str, Path)):
        grid = load_grid(grid)
    elif not isinstance(grid, Grid):
        grid = Grid.from_dict(grid)
    points: list[dict[str, Any]] = []
    for axes_point in _axis_points(grid):
        points.append(dict(axes_point))
    points += [dict(i) for i in grid.include]

    runs: list[tuple[RunConfig, dict[str, Any]]] = []
    seen: set[str] = set()
    for n, point in enumerate(points):
        is_include = n >= len(points) - len(grid.include)
        d = copy.deepcopy(grid.base)
        label = _fmt_point(point)
        try:
            for key, value in point.items():
                set_dotted(d, key, value)
            for rule in grid.rules:
                if _matches(d, rule.get("where") or {}):
                    for key, value in rule["set"].items():
                        set_dotted(d, key, value)
                        point[key] = value
            if not is_include and any(_matches(d, ex) for ex in grid.exclude):
                continue
            cfg = RunConfig.from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"grid {grid.name!r}, point [{label}]: {exc}") from None
        h = cfg.config_hash()
        if h in seen:
            continue
        seen.add(h)
        cfg.name = f"{grid.name}/{run_id_for(cfg, _id_values(grid, cfg, point))}"
        runs.append((cfg, point))
    if not runs:
        raise ConfigError(f"grid {grid.name!r} expands to no runs (check its exclude rules)")

    order: dict[str, int] = {}
    for cfg, _ in runs:
        order.setdefault(cfg.pretrain_hash(), len(order))
    ranked = sorted(enumerate(runs), key=lambda t: (order[t[1][0].pretrain_hash()], t[0]))
    varying = set(grid.axes) | {k for inc in grid.include for k in inc}
    out = [GridRun(index=i, run_id=cfg.name.rsplit("/", 1)[1], config=cfg, point=point,
                   variant=_variant(cfg, point, varying))
           for i, (_, (cfg, point)) in enumerate(ranked)]
    log.info("grid %s: %d runs in %d pretraining groups", grid.name, len(out), len(order))
    return out


def _id_values(grid: Grid, cfg: RunConfig, point: Mapping[str, Any]) -> dict[str, Any]:
    """This run's values of the grid axes that take several values, beyond those every id
    shows, and that apply to its method (another method's hyperparameter does not)."""
    out = {}
    for key, values in grid.axes.items():
        if key in _ID_AXES or key not in point or len({repr(v) for v in values}) < 2:
            continue
        head = key.split(".")[0]
        if head in _CONFIG_FIELDS or (head in PRUNERS and PRUNERS.canonical(head)
                                      == PRUNERS.canonical(cfg.method)):
            out[key] = point[key]
    return out


#: axes that the report shows as rows / columns / table sections, or averages over
TABLE_AXES = frozenset({"method", "loss.name", "sparsity", "seed", "data.fold", "model.name",
                        "data.dataset"})
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig))


def _variant(cfg: RunConfig, point: Mapping[str, Any], varying: set[str]) -> str:
    """The point's other axis values that apply to this config's method ("" if none)."""
    parts = []
    for key, value in point.items():
        if key not in varying or key in TABLE_AXES:
            continue
        head = key.split(".")[0]
        if head not in _CONFIG_FIELDS and not (
                head in PRUNERS and PRUNERS.canonical(head) == PRUNERS.canonical(cfg.method)):
            continue  # another method's hyperparameter: irrelevant to this run
        parts.append(f"{key}={value}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; also accepts SLURM's ``$SLURM_ARRAY_TASK_ID``
    substituted in by the shell. ``None`` -> no sharding."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise ConfigError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def shard_runs(runs: Sequence[GridRun], shard: tuple[int, int] | None,
               by: str = "run") -> list[GridRun]:
    """Runs of shard ``(i, n)``: ``by="run"`` takes every n-th run of the ordered grid
    (index % n == i); ``by="pretrain"`` deals whole pretraining groups round-robin, so no two
    shards pretrain the same dense model. Shards are disjoint and their union is the grid."""
    if shard is None:
        return list(runs)
    i, n = shard
    if by == "run":
        return [r for r in runs if r.index % n == i]
    if by == "pretrain":
        groups: dict[str, int] = {}
        for r in runs:
            groups.setdefault(r.pretrain_hash, len(groups))
        return [r for r in runs if groups[r.pretrain_hash] % n == i]
    raise ConfigError(f"shard_by must be 'run' or 'pretrain', got {by!r}")


def resolve_data_root(root: str | None, grid_path: Path | None) -> str | None:
    """A relative ``data.root`` is looked up, in order, in the grid file's directory, the
    current working directory, then each ancestor of the grid file's directory; the first
    existing path wins (unchanged if none exists, so the dataset reports it missing)."""
    if root is None or os.path.isabs(root):
        return root
    candidates: list[Path] = []
    if grid_path is not None:
        gdir = Path(grid_path).resolve().parent
        candidates.append(gdir)
    candidates.append(Path.cwd())
    if grid_path is not None:
        candidates += list(Path(grid_path).resolve().parent.parents)
    for c in candidates:
        p = c / root
        if p.exists():
            return str(p.resolve())
    return root
