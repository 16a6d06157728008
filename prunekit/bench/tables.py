"""Cell formatting and rendering of report tables (Markdown, booktabs LaTeX).

A table is a ``pandas.DataFrame`` of strings; its columns are the header. Numbers follow the
report's conventions: accuracies and differences in percent / points with one decimal, 95 %
intervals in brackets, ``–`` for "not measured", an empty cell for "no run".
"""
from __future__ import annotations

import math
import re

import pandas as pd

from prunekit.bench.latex import latex_table, tex_comment, tex_paragraph
from prunekit.bench.stats import Interval

__all__ = ["render", "prose", "INTERVALS", "fmt_acc", "fmt_diff", "fmt_p", "fmt_count", "fmt_pct",
           "fmt_ratio", "fmt_seed_interval", "fmt_points", "fmt_gap", "MISSING", "WARN_MARK"]

MISSING = "–"
#: beside a method whose own summary warns (not converged, warnings), explained under the table
WARN_MARK = "†"


def _bad(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


#: how intervals are printed: ``full`` (mean, std, [lo, hi]), ``half`` (mean ± half-width of
#: the 95 % interval: the compact form for papers), ``none`` (the mean only)
INTERVALS = ("full", "half", "none")


def _half(iv: Interval, scale: float) -> str:
    """`` ± h`` with h the half-width of ``iv`` (an asymmetric Wilson interval: half its length)."""
    return "" if _bad(iv.lo) or _bad(iv.hi) else f" ± {scale * (iv.hi - iv.lo) / 2:.1f}"


def fmt_acc(iv: Interval | None, approx: bool = False, intervals: str = "full") -> str:
    """``52.0 [45.1, 58.8]`` (one run, Wilson) or ``52.0 ± 1.4 [48.5, 55.5]`` (mean ± std over
    seeds, t-interval); percent. ``approx`` prefixes ``≈`` (an interpolated value).
    ``intervals="half"``: ``52.0 ± 6.9`` (half-width of the 95 % interval); ``"none"``: ``52.0``."""
    if iv is None or _bad(iv.mean):
        return MISSING
    s = ("≈" if approx else "") + f"{100 * iv.mean:.1f}"
    if intervals == "half":
        return s + _half(iv, 100)
    if intervals == "none":
        return s
    if not _bad(iv.std):
        s += f" ± {100 * iv.std:.1f}"
    if not _bad(iv.lo):
        s += f" [{100 * iv.lo:.1f}, {100 * iv.hi:.1f}]"
    return s


def fmt_diff(iv: Interval | None, seed_t: Interval | None = None, mark: bool = False,
             intervals: str = "full") -> str:
    """``-3.5 [-8.0, 1.0]`` points (bootstrap interval), ``; seeds [..]`` the t-interval over
    seeds, ``*`` when significant; ``intervals`` as in :func:`fmt_acc` (``half``: the bootstrap
    interval's half-width, no seed interval)."""
    if iv is None or _bad(iv.mean):
        return MISSING
    s = f"{iv.mean:+.1f}"
    if intervals == "half":
        s += _half(iv, 1)
    elif intervals == "full":
        s += f" [{iv.lo:+.1f}, {iv.hi:+.1f}]"
        if seed_t is not None and not _bad(seed_t.lo):
            s += f"; seeds [{seed_t.lo:+.1f}, {seed_t.hi:+.1f}]"
    return s + (" *" if mark else "")


def fmt_seed_interval(seed_t: Interval | None, intervals: str = "full") -> str:
    """The t-interval over seeds of a paired difference: ``[-2.2, +5.1]`` (``half``: ``± 3.7``);
    ``–`` for one seed, ``no spread`` when every seed gave the same difference."""
    if seed_t is None or seed_t.n < 2:
        return MISSING
    if _bad(seed_t.lo):
        return "no spread"
    if intervals == "half":
        return f"± {(seed_t.hi - seed_t.lo) / 2:.1f}"
    return f"[{seed_t.lo:+.1f}, {seed_t.hi:+.1f}]"


def fmt_points(x: float) -> str:
    """A non-negative size in points (the minimum detectable difference): ``4.2``."""
    return MISSING if _bad(x) else f"{x:.1f}"


def fmt_gap(ratio: float) -> str:
    """A cost ratio as a relative gap: ``+2.1 %`` (1.021×), ``-75.0 %``."""
    return MISSING if _bad(ratio) else f"{100 * (ratio - 1):+.1f} %"


def fmt_p(p: float) -> str:
    """A p-value: 3 significant digits, ``<1e-4`` below."""
    if _bad(p):
        return MISSING
    return "<1e-4" if p < 1e-4 else f"{p:.3g}"


def fmt_count(x: float) -> str:
    """1.30M, 18.9k, 512."""
    if _bad(x):
        return MISSING
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.0f}"


def fmt_pct(x: float, digits: int = 1) -> str:
    """A fraction in percent."""
    return MISSING if _bad(x) else f"{100 * x:.{digits}f}"


def fmt_ratio(x: float) -> str:
    """A cost ratio: ``0.10×``."""
    return MISSING if _bad(x) else f"{x:.2f}×"


def _md(table: pd.DataFrame) -> str:
    heads = [str(c) for c in table.columns]
    left = {i for i, c in enumerate(table.columns) if _text_column(table[c])}
    lines = ["| " + " | ".join(heads) + " |",
             "|" + "|".join("---" if i in left else "---:" for i in range(len(heads))) + "|"]
    for rec in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in rec) + " |")
    return "\n".join(lines)


def _is_text(v: object) -> bool:
    """A cell that is not a number (with optional unit, interval, ``≈``): left-aligned."""
    s = re.sub(r"\de[-+]?\d", "", str(v))
    return bool(re.search(r"[A-Za-z_]", re.sub(r"\d(k|M|G)\b", "", s))) and s != ""


def _text_column(col: pd.Series) -> bool:
    return any(_is_text(v) for v in col)


#: columns that, when one value fills them, LaTeX moves into the caption (saves page width)
_FOLDABLE = ("loss", "runs", "seeds", "examples")


def _fold_constant(table: pd.DataFrame, caption: str) -> tuple[pd.DataFrame, str]:
    same = [c for c in _FOLDABLE if c in table.columns and len(table) > 1
            and table[c].nunique() == 1]
    if not same:
        return table, caption
    what = "; ".join(f"{c} {table[c].iloc[0]}" for c in same)
    return table.drop(columns=same), f"{caption} ({what} in every row)"


def render(table: pd.DataFrame, fmt: str = "md", caption: str = "", notes: str = "",
           label: str = "") -> str:
    """One table as Markdown (``md``: caption, table, notes paragraph) or a booktabs LaTeX float
    (``latex``: prunekit.bench.latex, with ``\\label{tab:<label>}`` and the notes as table
    notes)."""
    if fmt == "md":
        body = (f"**{caption}**\n\n" if caption else "") + _md(table)
        return body + (f"\n\n{notes}" if notes else "")
    if fmt == "latex":
        table, caption = _fold_constant(table, caption)
        cols = [c for c in table.columns if c != "note"]
        align = "".join("l" if _text_column(table[c]) else "r" for c in cols)
        return latex_table(table, caption, notes, label, align)
    raise ValueError(f"format must be md or latex, got {fmt!r}")


def prose(text: str, fmt: str, comment: bool = False) -> str:
    """Text between tables: as is (``md``); LaTeX: escaped paragraphs, or ``%`` comments."""
    if fmt != "latex":
        return text
    return tex_comment(text) if comment else tex_paragraph(text)
