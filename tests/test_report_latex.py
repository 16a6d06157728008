"""`prunekit report --format latex` for a paper (issue 24): pure-ASCII output always; where a
LaTeX engine is installed, the published fmnist-structured report compiles in a one-column
article with no overfull box wider than 10 pt."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from prunekit.bench.latex import PREAMBLE, latex_table, tex_escape
from prunekit.bench.report import report

ROOT = Path(__file__).resolve().parents[1]
# the 48-row fmnist-structured publication of the 2+2 recipe (the re-run of issue 19 is in progress)
STRUCTURED = ROOT / "benchmarks" / "results" / "fmnist-structured-2x2" / "results.csv"
V1 = ROOT / "tests" / "data" / "fmnist-results-v1.csv"


def _non_ascii(text: str) -> list[str]:
    return sorted({ch for ch in text if ord(ch) > 127})


def test_escape_minus_and_non_ascii() -> None:
    assert tex_escape("Δ clean (points)") == r"$\Delta$ clean (points)"
    assert tex_escape("-3.5 [-8.0, +1.0] *") == "$-$3.5 [$-$8.0, +1.0] *"
    assert tex_escape("hydra-channel s0.5-seed1 1e-4") == "hydra-channel s0.5-seed1 1e-4"
    assert tex_escape("75.5 ± 1.4, 0.10×, ≈40 %, a_b & `x_y`") == (
        r"75.5 $\pm$ 1.4, 0.10$\times$, $\approx$40 \%, a\_b \& \texttt{x\_y}")
    assert not _non_ascii(tex_escape("ünïcødé ≠ ✓ 𝛼"))  # folded or '?', never raw


def test_table_label_notes_and_width() -> None:
    narrow = pd.DataFrame({"method": ["d2bc", "hydra"], "acc": ["1.0", "-2.0"],
                           "note": ["why", ""]})
    tex = latex_table(narrow, "cap", notes="n1", label="accuracy:x:y")
    assert r"\begin{table}[t]" in tex and r"\label{tab:accuracy:x:y}" in tex
    assert r"d2bc$^{\mathrm{a}}$" in tex and "(a) why" in tex and "note" not in tex.split(
        r"\midrule")[0]
    assert r"\toprule" in tex and r"\bottomrule" in tex and "$-$2.0" in tex
    wide = pd.DataFrame({f"column {i}": ["12.3 ± 4.5"] for i in range(20)})
    tex = latex_table(wide, "cap")
    assert r"\begin{table*}" in tex and r"\resizebox{\textwidth}{!}{%" in tex


@pytest.mark.parametrize("csv", [STRUCTURED, V1], ids=["fmnist-structured", "v1"])
def test_report_latex_is_ascii(csv: Path) -> None:
    text = report(csv, fmt="latex", n_resamples=200).text
    assert not _non_ascii(text), f"non-ASCII characters in the .tex: {_non_ascii(text)}"
    assert text.count(r"\label{tab:") == text.count(r"\caption{")
    if csv == STRUCTURED:  # the v1 file has no per-example files: no comparison table
        assert r"\Delta" in text and "$-$" in text


def _engine() -> str | None:
    """pdflatex with booktabs, else None (the skip reason is printed)."""
    exe = shutil.which("pdflatex")
    if exe is None:
        return None
    kpse = shutil.which("kpsewhich")
    if kpse is None or not subprocess.run([kpse, "booktabs.sty"], capture_output=True,
                                          text=True).stdout.strip():
        return None
    return exe


def test_structured_report_compiles_one_column(tmp_path: Path) -> None:
    exe = _engine()
    if exe is None:
        pytest.skip("no LaTeX engine with booktabs installed (pdflatex + booktabs.sty: "
                    "apt-get install texlive-latex-base texlive-latex-recommended); "
                    "the compile check did not run")
    body = report(STRUCTURED, fmt="latex", n_resamples=200, versus="dense,random-channel").text
    # the seed-level columns (issue 19), one float per metric and reference
    assert "MDD" in body and "p seeds (Holm)" in body and "Training budget" in body
    assert r"\label{tab:comparison:fashion-mnist:vgg-small:0.1:random-channel:worst-case}" in body
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n" + PREAMBLE + "\n\\begin{document}\n" + body
                   + "\n\\end{document}\n", encoding="ascii")
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert proc.returncode == 0, "pdflatex failed:\n" + "\n".join(
        ln for ln in log.splitlines() if ln.startswith("!"))[:2000]
    over = [float(m) for m in re.findall(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide", log)]
    assert all(w <= 10 for w in over), f"overfull boxes (pt): {over}"
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
