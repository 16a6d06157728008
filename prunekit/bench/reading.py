"""A short reading of a comparison table, computed from the results (never a fixed sentence).

For one metric (the worst case over every attack that ran, by default) and per loss, each
comparison against the reference is sorted by its two measured costs relative to the
reference, MACs and non-zero parameters (``Comparison.macs_ratio`` / ``params_ratio``):

- **same cost**: *both* within 5 % of the reference's (``SAME_COST``): a like-for-like result,
  significant or noise;
- **other cost**: both measured, at least one different: a trade-off, reported with the cost
  ratios and, when one of them matches, which one ("the same MACs but 0.10x non-zero params":
  a weight-masked model against dense is cheaper on parameters, not like-for-like);
- **cost unknown**: a cost that was not measured (NaN: e.g. a masked model's non-zero
  parameters in results written before schema v2) is never a match;
- **not tested**: no pair on the same examples (the reason is given).

Then methods other than the reference that have the same cost *as each other* (they can be
compared like for like with ``--versus``), and the methods whose own summary warns
(``method_summary``: not converged, warnings; prunekit.bench.cells.method_warnings), and the
comparisons whose per-seed differences spread by more than ``SEED_SPREAD`` points (seed std).

"significant" and "noise" are the comparison table's verdicts (prunekit.bench.compare: one
seed, Holm-adjusted exact McNemar p < 0.05, the examples of one trained model being the only
uncertainty unit; several seeds, the seed-level t-test after Holm *and* the example-level
sign-flip test after Holm). With several seeds the seed-level interval, p and the minimum
detectable difference come first, and a non-significant difference smaller than the MDD is said
to be below what the seeds can detect. Where the bootstrap interval alone would suggest
otherwise, the reason is printed beside the verdict.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from prunekit.bench.compare import Comparison
from prunekit.bench.labels import method_label
from prunekit.bench.tables import WARN_MARK, fmt_p, fmt_ratio

__all__ = ["reading", "SAME_COST", "SEED_SPREAD", "same_cost", "matched_costs", "cost_text"]

#: cost ratios within this relative distance of 1 are "the same cost"
SAME_COST = 0.05
#: a seed std of the per-seed differences above this (points) is named in the reading: there
#: the seeds resolve only differences of about the MDD (issue 19's 2-point bar)
SEED_SPREAD = 2.0
_MEASURES = ("MACs", "non-zero params")
#: (loss, method, variant, sparsity) -> the cell's method warnings
Warnings = Mapping[tuple[str, str, str, float], Sequence[str]]


def _same(ratio: float) -> bool:
    return not math.isnan(ratio) and abs(math.log(ratio)) <= math.log1p(SAME_COST)


def _ratios(c: Comparison) -> tuple[float, float]:
    return c.macs_ratio, c.params_ratio


def matched_costs(c: Comparison) -> list[str]:
    """The measured costs of ``c`` within 5 % of the reference's: ``["MACs", "non-zero
    params"]``, one of them, or none (a NaN ratio never matches)."""
    return [n for n, r in zip(_MEASURES, _ratios(c)) if _same(r)]


def same_cost(c: Comparison) -> bool:
    """True only if both MACs and non-zero parameters match the reference's."""
    return len(matched_costs(c)) == len(_MEASURES)


def _unknown(c: Comparison) -> list[str]:
    return [n for n, r in zip(_MEASURES, _ratios(c)) if math.isnan(r)]


def cost_text(c: Comparison) -> str:
    """``1.00× MACs, 0.98× non-zero params``; ``the same MACs (1.00×) but 0.10× non-zero
    params``; ``1.00× MACs, non-zero params not measured``."""
    parts = [f"{n} not measured" if math.isnan(r) else f"{fmt_ratio(r)} {n}"
             for n, r in zip(_MEASURES, _ratios(c))]
    match = matched_costs(c)
    if len(match) == 1 and not _unknown(c):
        i = _MEASURES.index(match[0])
        other = 1 - i
        return (f"the same {_MEASURES[i]} ({fmt_ratio(_ratios(c)[i])}) but "
                f"{fmt_ratio(_ratios(c)[other])} {_MEASURES[other]}")
    return ", ".join(parts)


def _what(c: Comparison, warned: Warnings) -> str:
    sp = f"{100 * c.sparsity:g}%"
    mark = f" {WARN_MARK}" if warned.get((c.loss, c.method, c.variant, c.sparsity)) else ""
    return f"{method_label(c.method, c.variant)} {sp}{mark}"


def _verdict(c: Comparison) -> str:
    """Several seeds: the seed-level result first (interval, Holm p, MDD), then the
    example-level one; one seed: the example-level result, said to be one model's."""
    d = c.diff
    assert d is not None
    word = "significant" if c.significant else "noise"
    why = f": {c.disagreement}" if c.disagreement else ""
    if c.seeds > 1:
        st = c.seed_t
        seeds = ("no spread over seeds" if st is None or math.isnan(st.lo)
                 else f"seeds [{st.lo:+.1f}, {st.hi:+.1f}]")
        mdd = "" if math.isnan(c.mdd) else f", MDD {c.mdd:.1f}"
        small = ("" if c.significant or math.isnan(c.mdd) or abs(d.mean) >= c.mdd else
                 f"; smaller than the {c.mdd:.1f} points these seeds can detect")
        return (f"{d.mean:+.1f} points ({c.seeds} seeds: {seeds}, seed-level p "
                f"{fmt_p(c.p_seed_holm)}{mdd}; examples [{d.lo:+.1f}, {d.hi:+.1f}], p "
                f"{fmt_p(c.p_holm)}; {word}{why}{small})")
    return (f"{d.mean:+.1f} points [{d.lo:+.1f}, {d.hi:+.1f}] (p {fmt_p(c.p_holm)}, "
            f"{word}{why})")


def _names(cs: Sequence[Comparison], warned: Warnings, diff: bool = True,
           cost: bool = False) -> str:
    def one(c: Comparison) -> str:
        inner = [f"{c.diff.mean:+.1f}"] if diff and c.diff else []
        inner += [cost_text(c)] if cost else []
        return _what(c, warned) + (f" ({'; '.join(inner)})" if inner else "")

    return ", ".join(one(c) for c in cs)


def _summary(same: list[Comparison], other: list[Comparison], unknown: list[Comparison],
             ref: str, warned: Warnings) -> str:
    sig = [c for c in same if c.significant]
    at = f"at the same cost (MACs and non-zero params within {100 * SAME_COST:g} % of {ref})"
    if sig:
        text = f"{at}, {_names(sig, warned)} differ{'s' if len(sig) == 1 else ''} significantly"
    elif same:
        text = f"{at}, no method differs significantly"
    else:
        text = f"no method has the same MACs and non-zero params as {ref}"
    noise = [c for c in same if not c.significant]
    if noise:
        text += f"; noise at the same cost: {_names(noise, warned, diff=False)}"
    for label, group in (("at another cost", other), ("at a cost not fully measured", unknown)):
        traded = [c for c in group if c.significant]
        if traded:
            text += f"; significant {label}: {_names(traded, warned, cost=True)}"
        quiet = [c for c in group if not c.significant]
        if quiet:
            text += f"; noise {label}: {_names(quiet, warned, diff=False)}"
    return text


def _peers(part: Sequence[Comparison], warned: Warnings) -> list[str]:
    """Groups (two or more) of compared methods whose MACs and non-zero params match each
    other's (both measured, within 5 %)."""
    groups: list[list[Comparison]] = []
    for c in part:
        if any(math.isnan(r) for r in _ratios(c)):
            continue
        for g in groups:
            if all(b > 0 and _same(a / b) for a, b in zip(_ratios(c), _ratios(g[0]))):
                g.append(c)
                break
        else:
            groups.append([c])
    return [f"{_names(g, warned, diff=False)} ({fmt_ratio(g[0].macs_ratio)} MACs, "
            f"{fmt_ratio(g[0].params_ratio)} non-zero params; `--versus {g[0].method}` tests "
            f"them pairwise)" for g in groups if len(g) > 1]


def reading(comparisons: Sequence[Comparison], metric: str, metric_text: str,
            warnings: Warnings | None = None) -> str:
    """Markdown bullet list reading ``comparisons`` on ``metric`` (``metric_text`` describes it,
    e.g. "worst case over pgd-50-10, apgd-ce"); ``warnings``: the cells' method warnings
    (prunekit.bench.cells); empty if there is nothing to read."""
    mine = [c for c in comparisons if c.metric == metric]
    if not mine:
        return ""
    warned: Warnings = warnings or {}
    ref = method_label(mine[0].reference)
    several = any(c.seeds > 1 for c in mine)
    one = any(c.seeds == 1 for c in mine)
    rule = ("significant with several seeds = the seed-level t-test of the per-seed differences "
            "(unit = seed) rejects after Holm, and so does the example-level sign-flip test"
            if several else "")
    if one:
        rule += ("; " if rule else "") + ("significant with one seed = Holm-adjusted exact "
                                         "McNemar p < 0.05 (one trained model per method: the "
                                         "examples are the only uncertainty unit, training "
                                         "noise is not measured)")
    lines = [f"Reading (computed from these results; {metric_text}; each method vs {ref} on "
             f"the same examples; {rule}; same cost = MACs and non-zero params both within "
             f"{100 * SAME_COST:g} %):"]
    for loss in dict.fromkeys(c.loss for c in mine):
        part = [c for c in mine if c.loss == loss]
        tested = [c for c in part if c.paired and c.diff is not None]
        same = [c for c in tested if same_cost(c)]
        unknown = [c for c in tested if not same_cost(c) and _unknown(c)]
        other = [c for c in tested if not same_cost(c) and not _unknown(c)]
        for group, head in ((same, f"same cost as {ref}"),
                            (other, f"other cost than {ref} (a trade-off, not a like-for-like "
                                    f"comparison)"),
                            (unknown, f"cost not fully measured (not a like-for-like "
                                      f"comparison)")):
            if group:
                items = "; ".join(f"{_what(c, warned)} at {cost_text(c)}: {_verdict(c)}"
                                  for c in group)
                lines.append(f"- {loss}, {head}: {items}.")
        if tested:
            lines.append(f"- {loss}, in short: {_summary(same, other, unknown, ref, warned)}.")
        wide = [c for c in tested if c.seeds > 1 and c.seed_t is not None
                and c.seed_t.std > SEED_SPREAD]
        if wide:
            lines.append(f"- {loss}, seed spread: the per-seed differences vary by more than "
                         f"{SEED_SPREAD:g} points (their std) for "
                         + ", ".join(f"{_what(c, warned)} ({c.seed_t.std:.1f}, MDD "
                                     f"{c.mdd:.1f})" for c in wide)
                         + f": there these seeds resolve only differences of about the MDD "
                           f"(benchmarks/perf/class_spread.py shows which classes carry a "
                           f"spread).")
        peers = _peers(part, warned)
        if peers:
            lines.append(f"- {loss}, same cost as each other: " + "; ".join(peers) + ".")
        untested = [c for c in part if not c.paired]
        if untested:
            lines.append(f"- {loss}, not tested: "
                         + "; ".join(f"{_what(c, warned)} ({c.note})" for c in untested) + ".")
        flagged = [(k, w) for k, w in warned.items() if k[0] == loss and w]
        if flagged:
            lines.append(f"- {loss}, {WARN_MARK} the method's own summary warns (its accuracy "
                         f"may not show the method working as intended): "
                         + "; ".join(f"{method_label(k[1], k[2])} {100 * k[3]:g}%: "
                                     f"{', '.join(w)}" for k, w in flagged) + ".")
    return "\n".join(lines)
