"""A short reading of a comparison table, computed from the results (never a fixed sentence).

For one metric (the worst case over every attack that ran, by default) and per loss, each
comparison against the reference is sorted into

- **same cost**: the method's measured MACs, or its non-zero parameters, are within 5 % of the
  reference's (``SAME_COST``): the difference is a like-for-like result, significant or noise;
- **other cost**: cheaper (or dearer) on both measures: the difference is a trade-off, reported
  with the cost ratios;
- **not tested**: no pair on the same examples (the reason is given).

"significant" and "noise" are the comparison table's verdicts (prunekit.bench.compare: Holm-
adjusted exact McNemar p < 0.05, and with several seeds a t-interval over seeds excluding 0).
"""
from __future__ import annotations

import math
from typing import Sequence

from prunekit.bench.compare import Comparison
from prunekit.bench.labels import method_label
from prunekit.bench.tables import fmt_p, fmt_ratio

__all__ = ["reading", "SAME_COST", "same_cost"]

#: cost ratios within this relative distance of 1 are "the same cost"
SAME_COST = 0.05


def _same(ratio: float) -> bool:
    return not math.isnan(ratio) and abs(math.log(ratio)) <= math.log1p(SAME_COST)


def same_cost(c: Comparison) -> list[str]:
    """Which measured costs of ``c`` match the reference's: ``["MACs", "params"]``, one, none."""
    return [n for n, r in (("MACs", c.macs_ratio), ("params", c.params_ratio)) if _same(r)]


def _what(c: Comparison) -> str:
    sp = f"{100 * c.sparsity:g}%"
    return f"{method_label(c.method, c.variant)} {sp}"


def _verdict(c: Comparison) -> str:
    d = c.diff
    assert d is not None
    word = "significant" if c.significant else "noise"
    seeds = f", {c.seeds} seeds" if c.seeds > 1 else ""
    return (f"{d.mean:+.1f} points [{d.lo:+.1f}, {d.hi:+.1f}] (p {fmt_p(c.p_holm)}{seeds}, "
            f"{word})")


def _costs(c: Comparison) -> str:
    return f"{fmt_ratio(c.macs_ratio)} MACs, {fmt_ratio(c.params_ratio)} params"


def _names(cs: Sequence[Comparison], diff: bool = True) -> str:
    return ", ".join(f"{_what(c)} ({c.diff.mean:+.1f})" if diff and c.diff else _what(c)
                     for c in cs)


def _summary(same: list[Comparison], other: list[Comparison], ref: str) -> str:
    sig = [c for c in same if c.significant]
    if sig:
        text = f"at the same cost, {_names(sig)} differ{'s' if len(sig) == 1 else ''} " \
               f"significantly from {ref}"
    elif same:
        text = f"no method differs significantly from {ref} at the same cost"
    else:
        text = f"no method has the same cost as {ref}"
    noise = [c for c in same if not c.significant]
    if sig and noise:
        text += f"; noise at the same cost: {_names(noise, diff=False)}"
    elif noise:
        text += f" ({_names(noise, diff=False)}: noise)"
    traded = [c for c in other if c.significant]
    if traded:
        text += f"; significant at another cost: {_names(traded)}"
    return text


def reading(comparisons: Sequence[Comparison], metric: str, metric_text: str) -> str:
    """Markdown bullet list reading ``comparisons`` on ``metric`` (``metric_text`` describes it,
    e.g. "worst case over pgd-50-10, apgd-ce"); empty if there is nothing to read."""
    mine = [c for c in comparisons if c.metric == metric]
    if not mine:
        return ""
    ref = method_label(mine[0].reference)
    lines = [f"Reading (computed from these results; {metric_text}; each method vs {ref} on "
             f"the same examples; significant = Holm-adjusted exact McNemar p < 0.05"
             + (" and a t-interval over seeds excluding 0" if any(c.seeds > 1 for c in mine)
                else "") + "):"]
    for loss in dict.fromkeys(c.loss for c in mine):
        part = [c for c in mine if c.loss == loss]
        tested = [c for c in part if c.paired and c.diff is not None]
        same = [c for c in tested if same_cost(c)]
        other = [c for c in tested if not same_cost(c)]
        if same:
            items = "; ".join(f"{_what(c)} at the same {' and '.join(same_cost(c))} "
                              f"({_costs(c)}): {_verdict(c)}" for c in same)
            lines.append(f"- {loss}, same cost as {ref}: {items}.")
        if other:
            items = "; ".join(f"{_what(c)} at {_costs(c)}: {_verdict(c)}" for c in other)
            lines.append(f"- {loss}, other cost than {ref} (a trade-off, not a like-for-like "
                         f"comparison): {items}.")
        if tested:
            lines.append(f"- {loss}, in short: {_summary(same, other, ref)}.")
        untested = [c for c in part if not c.paired]
        if untested:
            lines.append(f"- {loss}, not tested: "
                         + "; ".join(f"{_what(c)} ({c.note})" for c in untested) + ".")
    return "\n".join(lines)
