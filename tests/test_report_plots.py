"""Report figures for print (issue 24): vector formats and dpi, one colour and marker per method
in every figure, x offsets for series at the same x, the interval type on the axis, log ticks."""
from __future__ import annotations

from pathlib import Path

import pytest

from prunekit.bench import plots
from prunekit.bench.report import report
from prunekit.cli import main

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "tests" / "data" / "fmnist-results-v1.csv"


def test_styles_fixed_across_figures_offsets_and_labels(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, set] = {}
    xs: dict[tuple[str, str], list] = {}
    ylabels, ticks = [], []
    real = plots._Saver.__call__

    def spy(self, plt, fig, stem):
        fig.canvas.draw()
        for ax in fig.axes:
            ylabels.append(ax.get_ylabel())
            if ax.get_xscale() == "log":
                ticks.append([t.get_text() for t in ax.get_xticklabels() if t.get_text()])
            for h, lab in zip(*ax.get_legend_handles_labels()):
                line = h[0] if isinstance(h, tuple) or hasattr(h, "lines") else h
                name = lab.split(" (")[0]
                seen.setdefault(name, set()).add((line.get_color(), line.get_marker()))
                if ax.get_xscale() != "log" and hasattr(line, "get_xdata"):
                    xs[(stem.name + ax.get_title(), name)] = list(line.get_xdata())
        return real(self, plt, fig, stem)

    monkeypatch.setattr(plots._Saver, "__call__", spy)
    rep = report(V1, plots_dir=tmp_path, n_resamples=200)
    assert rep.plots
    for name, styles in seen.items():
        if name not in ("dense", "Pareto front"):
            assert len(styles) == 1, f"{name} drawn in several styles: {styles}"
    others = [s for n, s in seen.items() if n not in ("dense", "Pareto front")]
    assert len({next(iter(s)) for s in others}) == len(others)  # methods distinguishable
    # series at the same target sparsity are drawn side by side, not on top of each other
    by_fig: dict[str, list] = {}
    for (fig, _), x in xs.items():
        by_fig.setdefault(fig, []).append(tuple(round(v, 3) for v in x))
    assert all(len(set(v)) == len(v) for v in by_fig.values())
    assert all("error bars: 95 % Wilson interval" in y for y in ylabels if y)
    assert ticks and all(len(t) == len(set(t)) and all(len(s) <= 5 for s in t) for t in ticks)


def test_vector_formats_and_dpi(tmp_path: Path) -> None:
    out = tmp_path / "plots"
    assert main(["report", str(V1), "--plots", str(out), "--plot-format", "pdf,svg,png",
                 "--dpi", "80", "--bootstrap", "200"]) == 0
    pdf, svg, png = (sorted(out.glob(f"*.{e}")) for e in ("pdf", "svg", "png"))
    assert len(pdf) == len(svg) == len(png) == 7
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pdf)
    assert all(b"<svg" in p.read_bytes()[:2000] for p in svg)
    from PIL import Image

    with Image.open(png[0]) as im:
        assert abs(im.info["dpi"][0] - 80) < 1
    assert main(["report", str(V1), "--plots", str(out), "--plot-format", "gif"]) == 2
