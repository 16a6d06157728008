"""DARTS genotypes as plain data (Liu et al., ICLR 2019, Sec. 2.1; official ``genotypes.py`` of
DARTS and of LRNAS, fyqsama/LRNAS).

A genotype names, for each of the two cell types (normal, reduction), two ``(op, input)`` pairs
per intermediate node -- input 0 and 1 are the cell's two inputs (the outputs of the two
previous cells), input ``i + 2`` the i-th intermediate node -- and which states are
concatenated into the cell output. In JSON::

    {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [...], "reduce_concat": [2, 3, 4, 5]}

The named genotypes below are the published ones as released in the official LRNAS repository
(``genotypes.py``); the parameter counts of their final networks are the oracles of
tests/test_search_space.py (../shared/LRNAS.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["PRIMITIVES", "PARAM_FREE", "Genotype", "GENOTYPES", "genotype_from", "GenotypeError"]

#: the 8 DARTS operations, in the official order (alpha columns follow this order)
PRIMITIVES: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
#: ops the LRNAS greedy selection still admits over the budget (official: ``PRIMITIVES`` index
#: <= 3). ``skip_connect`` on a stride-2 edge is a FactorizedReduce, which does have parameters.
PARAM_FREE: frozenset[str] = frozenset(PRIMITIVES[:4])


class GenotypeError(ValueError):
    """A malformed genotype (one line naming what is wrong)."""


Edge = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    """Two ``(op, input)`` pairs per node for each cell type, plus the concatenated states."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for cell in ("normal", "reduce"):
            edges = tuple((str(op), int(j)) for op, j in getattr(self, cell))
            concat = tuple(int(i) for i in getattr(self, f"{cell}_concat"))
            object.__setattr__(self, cell, edges)
            object.__setattr__(self, f"{cell}_concat", concat)
            _check_cell(cell, edges, concat)

    @property
    def steps(self) -> int:
        """Intermediate nodes per cell (4 in DARTS)."""
        return len(self.normal) // 2

    def cell(self, reduction: bool) -> tuple[tuple[Edge, ...], tuple[int, ...]]:
        """``(edges, concat)`` of the reduction or the normal cell."""
        if reduction:
            return self.reduce, self.reduce_concat
        return self.normal, self.normal_concat

    def ops(self) -> set[str]:
        """Every op name used."""
        return {op for op, _ in self.normal + self.reduce}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists of ``[op, input]``)."""
        return {"normal": [[op, j] for op, j in self.normal],
                "normal_concat": list(self.normal_concat),
                "reduce": [[op, j] for op, j in self.reduce],
                "reduce_concat": list(self.reduce_concat)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Genotype":
        if not isinstance(d, Mapping):
            raise GenotypeError(f"a genotype must be a mapping, got {type(d).__name__}")
        keys = {"normal", "normal_concat", "reduce", "reduce_concat"}
        if set(d) != keys:
            raise GenotypeError(f"a genotype needs exactly the keys {', '.join(sorted(keys))}; "
                                f"got {', '.join(sorted(map(str, d)))}")
        for cell in ("normal", "reduce"):
            edges = d[cell]
            if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence) or not all(
                    isinstance(e, Sequence) and not isinstance(e, str) and len(e) == 2
                    for e in edges):
                raise GenotypeError(f"genotype {cell!r} must be a list of [op, input] pairs")
        return cls(normal=tuple(tuple(e) for e in d["normal"]),  # type: ignore[arg-type]
                   normal_concat=tuple(d["normal_concat"]),
                   reduce=tuple(tuple(e) for e in d["reduce"]),  # type: ignore[arg-type]
                   reduce_concat=tuple(d["reduce_concat"]))

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"genotype is not valid JSON: {exc}") from None


def _check_cell(cell: str, edges: tuple[Edge, ...], concat: tuple[int, ...]) -> None:
    if not edges or len(edges) % 2:
        raise GenotypeError(f"genotype {cell!r} needs two (op, input) pairs per node, got "
                            f"{len(edges)} pairs")
    for k, (op, j) in enumerate(edges):
        if op not in PRIMITIVES:
            raise GenotypeError(f"genotype {cell!r}: unknown op {op!r}; valid ops: "
                                f"{', '.join(PRIMITIVES)}")
        node = k // 2
        if not 0 <= j < node + 2:
            raise GenotypeError(f"genotype {cell!r}: node {node} takes input {j}, valid inputs "
                                f"are 0..{node + 1}")
    n_states = len(edges) // 2 + 2
    if not concat or any(not 0 <= i < n_states for i in concat):
        raise GenotypeError(f"genotype {cell}_concat must list states in 0..{n_states - 1}, got "
                            f"{list(concat)}")


def _g(normal: str, reduce: str) -> Genotype:
    """Compact literal: ``"op:j op:j ..."`` per cell, concat = every intermediate node."""
    def edges(text: str) -> tuple[Edge, ...]:
        return tuple((p.split(":")[0], int(p.split(":")[1])) for p in text.split())

    n, r = edges(normal), edges(reduce)
    return Genotype(n, tuple(range(2, 2 + len(n) // 2)), r, tuple(range(2, 2 + len(r) // 2)))


#: published genotypes (official LRNAS ``genotypes.py``), by prunekit name
GENOTYPES: dict[str, Genotype] = {
    # DARTS (second order), "DARTS" / "DARTS_V2" in the DARTS code
    "darts_v2": _g("sep_conv_3x3:0 sep_conv_3x3:1 sep_conv_3x3:0 sep_conv_3x3:1 "
                   "sep_conv_3x3:1 skip_connect:0 skip_connect:0 dil_conv_3x3:2",
                   "max_pool_3x3:0 max_pool_3x3:1 skip_connect:2 max_pool_3x3:1 "
                   "max_pool_3x3:0 skip_connect:2 skip_connect:2 max_pool_3x3:1"),
    # LRNAS, searched on CIFAR-10 / CIFAR-100 (``search_cifar10`` / ``search_cifar100``)
    "lrnas_cifar10": _g("max_pool_3x3:1 avg_pool_3x3:0 sep_conv_3x3:1 skip_connect:0 "
                        "sep_conv_3x3:2 avg_pool_3x3:1 max_pool_3x3:3 max_pool_3x3:0",
                        "none:0 none:1 sep_conv_5x5:2 max_pool_3x3:0 "
                        "avg_pool_3x3:2 skip_connect:1 max_pool_3x3:3 skip_connect:4"),
    "lrnas_cifar100": _g("avg_pool_3x3:0 none:1 skip_connect:0 skip_connect:2 "
                         "sep_conv_5x5:3 skip_connect:2 max_pool_3x3:4 sep_conv_5x5:1",
                         "none:0 skip_connect:1 none:0 none:1 "
                         "max_pool_3x3:1 none:0 skip_connect:4 sep_conv_3x3:0"),
    "racl": _g("sep_conv_3x3:0 sep_conv_3x3:1 sep_conv_5x5:0 skip_connect:1 "
               "sep_conv_3x3:0 skip_connect:3 sep_conv_3x3:3 skip_connect:4",
               "sep_conv_3x3:0 sep_conv_5x5:1 avg_pool_3x3:0 dil_conv_3x3:1 "
               "sep_conv_3x3:0 sep_conv_5x5:1 sep_conv_3x3:2 dil_conv_3x3:3"),
    "advrush": _g("sep_conv_3x3:1 sep_conv_3x3:0 sep_conv_5x5:0 sep_conv_3x3:1 "
                  "sep_conv_3x3:1 sep_conv_3x3:0 skip_connect:0 sep_conv_3x3:1",
                  "sep_conv_3x3:0 sep_conv_3x3:1 skip_connect:0 dil_conv_3x3:2 "
                  "skip_connect:0 avg_pool_3x3:1 skip_connect:0 skip_connect:2"),
}


def genotype_from(value: "Genotype | Mapping[str, Any] | str | None",
                  default: str = "darts_v2") -> Genotype:
    """A :class:`Genotype` from itself, its JSON dict, its JSON text, or a name in
    :data:`GENOTYPES` (``None``: ``default``)."""
    if value is None:
        value = default
    if isinstance(value, Genotype):
        return value
    if isinstance(value, Mapping):
        return Genotype.from_dict(value)
    if isinstance(value, str):
        if value.lstrip().startswith("{"):
            return Genotype.from_json(value)
        if value in GENOTYPES:
            return GENOTYPES[value]
        raise GenotypeError(f"unknown genotype {value!r}; named genotypes: "
                            f"{', '.join(sorted(GENOTYPES))} (or a JSON genotype)")
    raise GenotypeError(f"a genotype must be a name, a JSON mapping or a Genotype, got "
                        f"{type(value).__name__}")
