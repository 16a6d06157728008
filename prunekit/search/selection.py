"""LRNAS greedy architecture selection under a parameter budget (official ``ranking.ranking``,
fyqsama/LRNAS).

Each edge of each cell type is a candidate: its best op (argmax of the edge's alphas; it may be
``none``) valued by that maximum alpha. Candidates are visited best first (ties: normal before
reduction, lower edge first -- the order of the official ``np.argmax`` over the remaining rows).
The genotype starts as ``none`` placeholders (inputs 0 and 1 for every node). Before each
candidate the final network of the current genotype is measured; over the budget only
parameter-free ops (``none``, pools, ``skip_connect``: official index <= 3) are still accepted,
otherwise any op. An accepted candidate fills the next free slot of its node (at most two inputs
per node; a full node ignores it); a rejected one is dropped (its edge keeps nothing). Because
the budget is checked *before* adding, the last parametric op can overshoot it.

``strict=True`` (prunekit option, not in the official code) instead accepts a candidate only if
the network *with* it stays within the budget, so the result never exceeds it (useful for
matched-budget comparisons); docs/search.md.
"""
from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor

from prunekit.search.genotype import PARAM_FREE, Genotype

__all__ = ["greedy_select", "placeholder_genotype", "edge_node"]


def edge_node(edge: int) -> tuple[int, int]:
    """``(node, input)`` of a search-cell edge: node i has the 2 + i edges from states
    0..i+1 (edges 0-1 -> node 0, 2-4 -> node 1, 5-8 -> node 2, 9-13 -> node 3)."""
    node, offset = 0, 0
    while edge >= offset + node + 2:
        offset += node + 2
        node += 1
    return node, edge - offset


def placeholder_genotype(steps: int = 4) -> Genotype:
    """The official starting genotype: every node takes ``none`` from inputs 0 and 1."""
    cell = tuple(("none", j) for _ in range(steps) for j in (0, 1))
    concat = tuple(range(2, 2 + steps))
    return Genotype(cell, concat, cell, concat)


def greedy_select(alphas: dict[str, Tensor], ops: Sequence[str], count: Callable[[Genotype], int],
                  budget: float, strict: bool = False, steps: int = 4) -> Genotype:
    """The genotype selected from ``alphas`` (``{"normal": [E, n_ops], "reduce": ...}``) with
    ``count(genotype)`` the parameters of its final network (see the module docstring)."""
    candidates = []
    for c, cell in enumerate(("normal", "reduce")):
        a = alphas[cell].detach().double().cpu()
        for edge in range(a.shape[0]):
            value, op = a[edge].max(0)  # first maximum, as np.argmax
            candidates.append((-float(value), c, edge, int(op)))
    candidates.sort(key=lambda t: t[0])  # stable: ties keep (cell, edge) order
    start = placeholder_genotype(steps)
    slots = {"normal": list(start.normal), "reduce": list(start.reduce)}
    filled = {"normal": [0] * steps, "reduce": [0] * steps}

    def current(extra: tuple[str, int, int, str] | None = None) -> Genotype:
        s = {k: list(v) for k, v in slots.items()}
        if extra is not None:
            cell, slot, j, name = extra
            s[cell][slot] = (name, j)
        return Genotype(tuple(s["normal"]), start.normal_concat, tuple(s["reduce"]),
                        start.reduce_concat)

    for _, c, edge, op in candidates:
        cell, name = ("normal", "reduce")[c], ops[op]
        node, j = edge_node(edge)
        if filled[cell][node] >= 2:
            continue
        slot = 2 * node + filled[cell][node]
        if strict:
            ok = count(current((cell, slot, j, name))) <= budget
        else:
            ok = name in PARAM_FREE or count(current()) <= budget
        if ok:
            slots[cell][slot] = (name, j)
            filled[cell][node] += 1
    return current()
