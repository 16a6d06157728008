"""Which reference rows a table's paired comparison uses (``prunekit report --versus``), within a
model family or across families (issue 25).

A table is one (dataset, model, eps). A reference method of the same model is compared within
the family (prunekit.bench.compare, costs relative to the family's dense model). A reference
method that ran on *another* model of the same dataset and eps -- LRNAS's searched network
against pruned vgg-small rows -- is compared across families: its rows join the table's for the
pairing, which is the same as within a family (same loss, seed, fold and identical per-example
``index`` arrays: the same evaluation examples), and the costs are compared in absolute measured
MACs and non-zero parameters. If the reference ran on several other models, the one with the
most runs is used (the note names it).

:func:`pairable_methods` lists the methods that can be a reference at all (some other method's
run shares a dataset, eps, loss, seed, fold and evaluated examples with one of theirs): the valid
choices named by the one-line error when ``--versus`` pairs nothing.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import pandas as pd

from prunekit.bench.cells import REPLICATE_KEYS

__all__ = ["references", "reference_rows", "pairable_methods"]

#: the rows of a run that must agree for two runs to pair (besides the evaluated examples)
_PAIR_KEYS = ["dataset", "eps", "loss", *REPLICATE_KEYS]


def references(versus: str | Sequence[str] | None) -> list[str]:
    """``"dense,random-channel"`` or a sequence -> the reference methods, in order, once each."""
    if versus is None:
        return []
    items = versus.split(",") if isinstance(versus, str) else list(versus)
    return list(dict.fromkeys(v.strip() for v in items if v and v.strip()))


def reference_rows(ok: pd.DataFrame, sub: pd.DataFrame, ref: str) -> tuple[pd.DataFrame, str]:
    """The rows of ``ref`` to pair the table ``sub`` with, and the other model's name when they
    come from another model family ("" within the family; empty frame: no such run)."""
    own = sub[sub["method"] == ref]
    if len(own):
        return own, ""
    dataset, eps = sub["dataset"].iloc[0], sub["eps"].iloc[0]
    other = ok[(ok["method"] == ref) & (ok["dataset"] == dataset) & (ok["eps"] == eps)
               & (ok["model"] != sub["model"].iloc[0])]
    if other.empty:
        return other, ""
    model = Counter(other["model"]).most_common(1)[0][0]
    return other[other["model"] == model], str(model)


def _key(row: pd.Series) -> tuple | None:
    pe = row["_pe"]
    if pe is None:
        return None
    return (*("" if pd.isna(row[k]) else row[k] for k in _PAIR_KEYS), pe.index.tobytes())


def pairable_methods(ok: pd.DataFrame) -> list[str]:
    """Methods with at least one run that pairs with a run of another method (same dataset,
    eps, loss, seed, fold and evaluated examples), in file order."""
    by_key: dict[tuple, set[str]] = {}
    for _, r in ok.iterrows():
        k = _key(r)
        if k is not None:
            by_key.setdefault(k, set()).add(r["method"])
    good = {m for ms in by_key.values() if len(ms) > 1 for m in ms}
    return [m for m in dict.fromkeys(ok["method"]) if m in good]
