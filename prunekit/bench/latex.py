"""LaTeX rendering of report tables for a paper: booktabs, ``\\label``, proper minus signs,
pure-ASCII output, notes as table notes, wide tables scaled to the text width.

What a table needs in the preamble: ``\\usepackage{booktabs}`` and ``\\usepackage{graphicx}``
(both in every TeX distribution: texlive-latex-recommended / texlive-latex-base); nothing else
(no threeparttable, no siunitx, no inputenc: the output is 7-bit ASCII).

- Every character outside ASCII is replaced by its LaTeX form (``±`` -> ``$\\pm$``, ``Δ`` ->
  ``$\\Delta$``, ``–`` -> ``--``, ...); one that is not in the table is folded to ASCII
  (``unicodedata`` NFKD) or, failing that, replaced by ``?`` with one warning, so no non-ASCII
  byte ever reaches the ``.tex`` (pdflatex stops at the first one it has no definition for).
- A hyphen that is a minus sign (before a digit, at the start of a cell or after a space or
  bracket) becomes ``$-$``.
- A table whose estimated natural width exceeds a one-column text width (345 pt: article, 10 pt)
  is set as ``table*`` (spanning both columns of a two-column paper) inside
  ``\\resizebox{\\textwidth}{!}{...}``; narrower ones as ``table`` at their natural size.
- The notes are a ``\\footnotesize`` paragraph of the text width under the tabular, inside the
  float; a ``note`` column (per-row prose) becomes superscript letters on the row's ``method``
  cell and lettered notes under the table.
"""
from __future__ import annotations

import logging
import re
import unicodedata

import pandas as pd

__all__ = ["latex_table", "tex_escape", "tex_comment", "tex_paragraph", "PREAMBLE",
           "TEXT_WIDTH_PT"]

log = logging.getLogger(__name__)

#: what a document needs for these tables
PREAMBLE = "\\usepackage{booktabs}\n\\usepackage{graphicx}"
#: one-column text width of a 10 pt article (the wide-table threshold)
TEXT_WIDTH_PT = 345.0
#: rough width of one character of a 10 pt table cell, and the padding of one column (2 tabcolsep)
_CHAR_PT, _COL_PT = 5.0, 12.0

_CHARS = {
    "±": r"$\pm$", "–": "--", "—": "---", "−": "$-$", "≈": r"$\approx$", "×": r"$\times$",
    "†": r"$\dagger$", "‡": r"$\ddagger$", "Δ": r"$\Delta$", "δ": r"$\delta$", "ε": r"$\varepsilon$",
    "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\rightarrow$", "←": r"$\leftarrow$", "·": r"$\cdot$",
    "°": r"$^\circ$", "µ": r"$\mu$", "μ": r"$\mu$", "∞": r"$\infty$", "√": r"$\surd$",
    "‰": r"\textperthousand{}", "…": r"\dots{}", "“": "``", "”": "''", "‘": "`", "’": "'",
    "\u00a0": "~", "\u2009": r"\,", "\u202f": r"\,", "²": r"$^2$", "³": r"$^3$", "⁻": "$^-$",
    "¹": r"$^1$", "⁰": r"$^0$", "⁴": r"$^4$", "⁵": r"$^5$", "⁶": r"$^6$",
}
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
            "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}
_MINUS = re.compile(r"(?:^|(?<=[\s(\[;,=]))-(?=\.?\d)")


def _ascii(ch: str) -> str:
    folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    if folded:
        return folded
    log.warning("LaTeX: no ASCII form of %r (U+%04X); written as '?'", ch, ord(ch))
    return "?"


def tex_escape(s: str, code: bool = False) -> str:
    """``s`` as LaTeX text: specials escaped, minus signs as ``$-$``, every non-ASCII character
    replaced (module doc). Markdown ``code`` spans become ``\\texttt``."""
    s = str(s)
    if not code and "`" in s:
        parts = s.split("`")
        return "".join(tex_escape(p) if i % 2 == 0 else r"\texttt{" + tex_escape(p, code=True)
                       + "}" for i, p in enumerate(parts))
    s = _MINUS.sub("\x00", s) if not code else s
    out = []
    for ch in s:
        if ch == "\x00":
            out.append("$-$")
        elif ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append(_CHARS.get(ch) or tex_escape(_ascii(ch), code=True))
    return "".join(out)


def tex_comment(text: str) -> str:
    """Lines of ``text`` as ``%`` comments, in ASCII (the same replacements; a comment is still
    read by the engine's input encoding)."""
    return "\n".join("% " + "".join(ch if ord(ch) < 128 else (_CHARS.get(ch) or _ascii(ch))
                                    for ch in ln) for ln in text.splitlines())


def tex_paragraph(text: str) -> str:
    """Prose between tables: one escaped paragraph per line."""
    return "\n\n".join(tex_escape(ln) for ln in text.splitlines() if ln.strip())


def _width_pt(table: pd.DataFrame) -> float:
    width = 0.0
    for c in table.columns:
        longest = max([len(str(c))] + [len(str(v)) for v in table[c]])
        width += longest * _CHAR_PT + _COL_PT
    return width


def _lettered_notes(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A ``note`` column -> superscript letters on the first text column, plus the notes."""
    if "note" not in table.columns:
        return table, []
    table = table.copy()
    notes: dict[str, str] = {}
    marks = []
    for note in table["note"]:
        if not note:
            marks.append("")
            continue
        letter = notes.setdefault(note, chr(ord("a") + len(notes) % 26))
        marks.append(letter)
    table = table.drop(columns="note")
    return table.assign(_mark=marks), [f"({v}) {k}" for k, v in notes.items()]


def latex_table(table: pd.DataFrame, caption: str, notes: str = "", label: str = "",
                align: str | None = None) -> str:
    """One table as a booktabs float (module doc); ``label`` becomes ``\\label{tab:<label>}``;
    ``align`` a tabular column spec (default: ``l`` for text columns, ``r`` for numbers)."""
    table, lettered = _lettered_notes(table)
    marks = list(table.pop("_mark")) if "_mark" in table.columns else [""] * len(table)
    mark_col = 1 if len(table.columns) > 1 and "method" in table.columns else 0
    if "method" in table.columns:
        mark_col = list(table.columns).index("method")
    wide = _width_pt(table) > TEXT_WIDTH_PT
    env = "table*" if wide else "table"
    spec = align or "l" * len(table.columns)
    lines = [f"\\begin{{{env}}}[t]", r"\centering", f"\\caption{{{tex_escape(caption)}}}"]
    if label:
        lines.append(f"\\label{{tab:{re.sub(r'[^A-Za-z0-9:.-]+', '-', label).strip('-')}}}")
    lines += ([r"\resizebox{\textwidth}{!}{%"] if wide else []) + [
        r"\begin{tabular}{@{}" + spec + "@{}}", r"\toprule",
        " & ".join(tex_escape(str(c)) for c in table.columns) + r" \\", r"\midrule"]
    for rec, mark in zip(table.itertuples(index=False), marks):
        cells = [tex_escape(str(v)) for v in rec]
        if mark:
            cells[mark_col] += f"$^{{\\mathrm{{{mark}}}}}$"
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}" + ("}" if wide else "")]
    paras = [tex_escape(p) for p in lettered] + [tex_escape(ln) for ln in notes.splitlines()
                                                 if ln.strip()]
    if paras:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize\raggedright",
                  "\n\n".join(paras), r"\end{minipage}"]
    lines.append(f"\\end{{{env}}}")
    return "\n".join(lines)
