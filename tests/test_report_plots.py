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


def test_min_span_limits() -> None:
    lim = plots.min_span_limits
    assert lim(50.0, 90.0, 10.0) is None                       # wide enough: matplotlib's own
    assert lim(90.0, 90.0, 10.0, 1.0) == (84.0, 96.0)          # centred, offsets' room added
    assert lim(98.0, 98.0, 10.0, 1.0, within=(0.0, 100.0)) == (89.0, 101.0)   # kept in range
    assert lim(0.0, 0.0, 10.0, 0.0, within=(0.0, 100.0)) == (0.0, 10.0)


def test_one_sparsity_and_close_costs_get_a_sensible_x_range(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """One target sparsity (and unstructured costs a few percent apart) no longer stretch over
    the whole width: the linear axis spans >= 10 points around 90 %, the log axes >= 4x."""
    import pandas as pd

    rows = pd.read_csv(V1, dtype=str, keep_default_na=False)
    rows = rows[rows["target_sparsity"].astype(float).isin([0.0, 0.9])
                & (rows["method"] != "d2bc") & (rows["loss"] == "trades")]
    csv = tmp_path / "one.csv"
    rows.to_csv(csv, index=False)
    spans: dict[str, tuple[float, float]] = {}
    real = plots._Saver.__call__

    def spy(self, plt, fig, stem):
        spans[stem.name] = fig.axes[0].get_xlim()
        return real(self, plt, fig, stem)

    monkeypatch.setattr(plots._Saver, "__call__", spy)
    report(csv, plots_dir=tmp_path / "plots", n_resamples=100)
    lo, hi = spans["acc_vs_sparsity_worst"]
    assert hi - lo >= plots.MIN_SPAN_SPARSITY and lo < 90 < hi and hi <= 102
    for name in ("pareto_macs", "pareto_params"):
        lo, hi = spans[name]
        assert hi / lo >= plots.MIN_SPAN_COST, (name, lo, hi)
