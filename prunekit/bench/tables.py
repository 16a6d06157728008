"""Cell formatting and rendering of report tables (Markdown, booktabs LaTeX).

A table is a ``pandas.DataFrame`` of strings; its columns are the header. Numbers follow the
report's conventions: accuracies and differences in percent / points with one decimal, 95 %
intervals in brackets, ``–`` for "not measured", an empty cell for "no run".
"""
from __future__ import annotations

import math
import re

import pandas as pd

from prunekit.bench.stats import Interval

__all__ = ["render", "fmt_acc", "fmt_diff", "fmt_p", "fmt_count", "fmt_pct", "fmt_ratio",
           "MISSING", "WARN_MARK"]

MISSING = "–"
#: beside a method whose own summary warns (not converged, warnings), explained under the table
WARN_MARK = "†"


def _bad(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_acc(iv: Interval | None, approx: bool = False) -> str:
    """``52.0 [45.1, 58.8]`` (one run, Wilson) or ``52.0 ± 1.4 [48.5, 55.5]`` (mean ± std over
    seeds, t-interval); percent. ``approx`` prefixes ``≈`` (an interpolated value)."""
    if iv is None or _bad(iv.mean):
        return MISSING
    s = ("≈" if approx else "") + f"{100 * iv.mean:.1f}"
    if not _bad(iv.std):
        s += f" ± {100 * iv.std:.1f}"
    if not _bad(iv.lo):
        s += f" [{100 * iv.lo:.1f}, {100 * iv.hi:.1f}]"
    return s


def fmt_diff(iv: Interval | None, seed_t: Interval | None = None, mark: bool = False) -> str:
    """``-3.5 [-8.0, 1.0]`` points (bootstrap interval), ``; seeds [..]`` the t-interval over
    seeds, ``*`` when significant."""
    if iv is None or _bad(iv.mean):
        return MISSING
    s = f"{iv.mean:+.1f} [{iv.lo:+.1f}, {iv.hi:+.1f}]"
    if seed_t is not None and not _bad(seed_t.lo):
        s += f"; seeds [{seed_t.lo:+.1f}, {seed_t.hi:+.1f}]"
    return s + (" *" if mark else "")


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


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("±", r"$\pm$"), ("–", "--"), ("≈", r"$\approx$"),
                 ("×", r"$\times$"), ("†", r"$\dagger$")):
        s = s.replace(a, b)
    return s


def _latex(table: pd.DataFrame, caption: str) -> str:
    align = "".join("l" if _text_column(table[c]) else "r" for c in table.columns)
    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex_escape(caption)}}}",
             r"\begin{tabular}{" + align + "}", r"\toprule",
             " & ".join(_tex_escape(str(c)) for c in table.columns) + r" \\", r"\midrule"]
    for rec in table.itertuples(index=False):
        lines.append(" & ".join(_tex_escape(str(v)) for v in rec) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def render(table: pd.DataFrame, fmt: str = "md", caption: str = "", notes: str = "") -> str:
    """One table as Markdown (``md``) or a booktabs LaTeX ``table`` (``latex``), with its
    caption and a notes paragraph under it (LaTeX: as ``%`` comments)."""
    if fmt == "md":
        body = (f"**{caption}**\n\n" if caption else "") + _md(table)
        return body + (f"\n\n{notes}" if notes else "")
    if fmt == "latex":
        body = _latex(table, caption)
        return body + ("\n" + "\n".join("% " + ln for ln in notes.splitlines()) if notes else "")
    raise ValueError(f"format must be md or latex, got {fmt!r}")
