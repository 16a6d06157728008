"""Plots of the report's cells for print (matplotlib, Agg backend): PNG at ``dpi`` (default 200)
and/or vector PDF / SVG. Error bars are the cells' 95 % intervals -- Wilson over examples for
one run, t-interval over seeds/folds for several -- and every figure says which in its y label.

- ``acc_vs_sparsity_<metric>[_<group>].<ext>``: accuracy (%) vs target sparsity for ``clean``,
  every attack that ran (file named by the attack) and ``worst``; one panel per loss, one line per
  method, the legend saying what each method's sparsity targets (``macs``, ``weights``, ...);
  dense runs as a dashed horizontal line. The x axis is *not* a cost axis: see the Pareto plots.
- ``pareto_macs[_<group>].<ext>``, ``pareto_params[_<group>].<ext>``: worst-case robust accuracy
  (%) vs measured MACs / non-zero parameters on a log axis (ticks at 1, 2, 5 x 10^k, labelled
  ``200k``, ``1M``), one panel per loss, one line per method (in cost order), and the Pareto front
  over all methods (points no other point beats at lower or equal cost) as a grey step line.

One colour and one marker per method, fixed across every figure of a report (in the report's
method order, :func:`method_styles`); series that share x values are drawn with small x offsets
(a fraction of a point of sparsity, or a few percent on the log axes) so none hides another.
An x axis never spans less than ``MIN_SPAN_SPARSITY`` points of sparsity or a factor of
``MIN_SPAN_COST`` in cost (:func:`min_span_limits`): one target sparsity, or costs a few percent
apart, would otherwise be stretched over the whole width, the offsets reading as different
sparsities and a 4 % cost difference as a factor.

``<group>`` = ``<dataset>_<model>_eps<eps>``, only when the CSV holds several groups.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from prunekit.bench.cells import dense_cost
from prunekit.bench.labels import WORST
from prunekit.bench.tables import fmt_count
from prunekit.errors import ConfigError

__all__ = ["make_plots", "method_styles", "min_span_limits", "PLOT_FORMATS",
           "MIN_SPAN_SPARSITY", "MIN_SPAN_COST"]

log = logging.getLogger(__name__)

PLOT_FORMATS = ("png", "pdf", "svg")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*")
#: x offset between neighbouring series: points of sparsity (linear axis), factor (log axis)
_DX_LIN, _DX_LOG = 0.6, 0.025
#: the narrowest x axes: points of sparsity (acc_vs_sparsity), a cost factor (Pareto, log axis)
MIN_SPAN_SPARSITY, MIN_SPAN_COST = 10.0, 4.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def method_styles(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``label -> {"color", "marker"}``: the i-th method (report order) gets colour ``C<i>`` of
    matplotlib's default cycle (tab10) and the i-th marker; the same in every figure."""
    plt = _pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["k"])
    return {lab: {"color": colors[i % len(colors)], "marker": _MARKERS[i % len(_MARKERS)]}
            for i, lab in enumerate(dict.fromkeys(labels))}


def make_plots(groups: Mapping[str, tuple[pd.DataFrame, dict[str, str]]], out_dir: Path,
               formats: Sequence[str] = ("png",), dpi: int = 200) -> list[Path]:
    """Write the plots of every group (``key -> (cells, metric labels)``, from the report) in
    every format of ``formats`` (``png``, ``pdf``, ``svg``; ``dpi`` for PNG); returns the files
    written."""
    bad = [f for f in formats if f not in PLOT_FORMATS]
    if bad or not formats:
        raise ConfigError(f"plot format {', '.join(bad) or '(none)'}: valid: "
                          f"{', '.join(PLOT_FORMATS)}")
    if dpi < 50 or dpi > 2400:
        raise ConfigError(f"--dpi must be in [50, 2400], got {dpi}")
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = method_styles([lab for cells, _ in groups.values() for lab in cells["label"]])
    save = _Saver(tuple(dict.fromkeys(formats)), dpi)
    for key, (cells, labels) in groups.items():
        dataset, model, eps = key.split(":")
        suffix = "" if len(groups) == 1 else f"_{_slug(dataset)}_{_slug(model)}_eps{eps}"
        title = f"{dataset} / {model} (eps {eps})"
        bars = _interval_kind(cells)
        for metric, label in labels.items():
            _acc_vs_sparsity(cells, metric, label, title, styles, bars, save,
                             out_dir / f"acc_vs_sparsity_{_slug(metric)}{suffix}")
        robust = WORST if WORST in labels else list(labels)[-1]
        for axis, name in (("rel_macs", "macs"), ("rel_params", "params")):
            if cells[axis].notna().any():
                _pareto(cells, robust, labels[robust], axis, title, styles, bars, save,
                        out_dir / f"pareto_{name}{suffix}")
    log.info("wrote %d plots to %s", len(save.files), out_dir)
    return save.files


class _Saver:
    """Saves one figure in every requested format and closes it."""

    def __init__(self, formats: tuple[str, ...], dpi: int) -> None:
        self.formats, self.dpi, self.files = formats, dpi, []

    def __call__(self, plt: Any, fig: Any, stem: Path) -> None:
        fig.tight_layout()
        for ext in self.formats:
            path = stem.with_name(f"{stem.name}.{ext}")
            fig.savefig(path, dpi=self.dpi, metadata=_metadata(ext))
            self.files.append(path)
        plt.close(fig)


def _metadata(ext: str) -> dict[str, Any] | None:
    """No creation date in PDF/SVG (re-rendering the same CSV gives the same file)."""
    return {"CreationDate": None} if ext == "pdf" else {"Date": None} if ext == "svg" else None


def _interval_kind(cells: pd.DataFrame) -> str:
    """What the error bars are: ``95 % Wilson interval`` (one run per cell), ``95 % t-interval
    over runs`` (several), or both."""
    runs = set(int(r) for r in cells["runs"])
    kinds = (["95 % Wilson interval"] if 1 in runs else []) + (
        [f"95 % t-interval over {'/'.join(str(r) for r in sorted(runs - {1}))} runs"]
        if runs - {1} else [])
    return " or ".join(kinds)


def _offsets(n: int) -> np.ndarray:
    """Centred offsets -k..k (in units of one step) for n series."""
    return np.arange(n) - (n - 1) / 2

def min_span_limits(lo: float, hi: float, min_span: float, margin: float = 0.0,
                    within: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """x limits centred on the data range ``[lo, hi]`` that span at least ``min_span`` (plus
    ``margin`` each side, room for the series offsets), shifted to stay inside ``within`` (plus
    the margin) where given; None when the data already span ``min_span`` (matplotlib's own
    limits are then fine)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo >= min_span:
        return None
    half = min_span / 2 + margin
    left, right = (lo + hi) / 2 - half, (lo + hi) / 2 + half
    if within is not None:
        shift = max(0.0, right - within[1] - margin) - max(0.0, within[0] - margin - left)
        left, right = left - shift, right - shift
    return left, right


def _widen(ax: Any, x: np.ndarray, n_series: int, log: bool) -> None:
    """Apply :func:`min_span_limits` to ``ax`` for the true (un-offset) x values ``x``."""
    x = x[np.isfinite(x) & ((x > 0) if log else np.isfinite(x))]
    if not len(x):
        return
    room = _offsets(max(n_series, 1))[-1] + 1.0       # the outermost offset plus one step
    if log:
        lim = min_span_limits(math.log10(x.min()), math.log10(x.max()),
                              math.log10(MIN_SPAN_COST), room * math.log10(1 + _DX_LOG))
        if lim:
            ax.set_xlim(10 ** lim[0], 10 ** lim[1])
    else:
        lim = min_span_limits(float(x.min()), float(x.max()), MIN_SPAN_SPARSITY,
                              room * _DX_LIN, within=(0.0, 100.0))
        if lim:
            ax.set_xlim(*lim)


def _bars(ivs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Means (%) and asymmetric error bars (%) of a list of Intervals (NaN ends -> no bar)."""
    y = np.array([100 * iv.mean for iv in ivs])
    lo = np.array([0.0 if math.isnan(iv.lo) else 100 * (iv.mean - iv.lo) for iv in ivs])
    hi = np.array([0.0 if math.isnan(iv.hi) else 100 * (iv.hi - iv.mean) for iv in ivs])
    return y, np.vstack([lo, hi])


def _panels(plt: Any, cells: pd.DataFrame) -> tuple[Any, Any, list[str]]:
    losses = list(dict.fromkeys(cells["loss"]))
    fig, axes = plt.subplots(1, len(losses), figsize=(4.8 * len(losses), 3.8), squeeze=False,
                             sharey=True)
    return fig, axes, losses


def _acc_vs_sparsity(cells: pd.DataFrame, metric: str, label: str, title: str,
                     styles: Mapping[str, dict[str, Any]], bars: str, save: _Saver,
                     stem: Path) -> None:
    plt = _pyplot()
    fig, axes, losses = _panels(plt, cells)
    col = f"acc:{metric}"
    for ax, loss in zip(axes[0], losses):
        part = cells[(cells["loss"] == loss) & cells[col].notna()]
        several = part["target_sparsity"].nunique() > 1
        series = [(n, g) for n, g in part.groupby("label", sort=False)
                  if not ((g["granularity"] == "none").all() and several)]
        shift = dict(zip([n for n, _ in series], _offsets(len(series)) * _DX_LIN))
        for name, g in part.groupby("label", sort=False):
            g = g.sort_values("target_sparsity")
            y, err = _bars(list(g[col]))
            st = styles.get(name, {})
            if name not in shift:  # dense: a reference line
                ax.axhline(float(y[0]), ls="--", color=st.get("color", "gray"), lw=1, label=name)
                continue
            tgt = g["sp_target"].iloc[0]
            ax.errorbar(g["target_sparsity"] * 100 + shift[name], y, yerr=err, capsize=2.5,
                        ms=4.5, lw=1.2, elinewidth=0.9, **st,
                        label=f"{name} ({tgt})" if tgt and tgt != "none" else name)
        _widen(ax, np.concatenate([g["target_sparsity"].to_numpy(float) * 100
                                   for n, g in series] or [np.array([])]), len(series), False)
        ax.set_title(f"{title}: {loss}", fontsize=9)
        ax.set_xlabel("target sparsity (%) of what the method targets")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _label_y(axes, label, bars)
    save(plt, fig, stem)


def _front(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Points no other point beats at lower or equal cost, in cost order."""
    fx, fy, best = [], [], -math.inf
    for i in np.lexsort((-y, x)):
        if y[i] > best:
            fx.append(float(x[i]))
            fy.append(float(y[i]))
            best = y[i]
    return fx, fy


def _log_ticks(ax: Any) -> None:
    """Major ticks at 1, 2, 5 x 10^k labelled ``200k`` / ``1M``; unlabelled minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_count(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _pareto(cells: pd.DataFrame, metric: str, label: str, axis: str, title: str,
            styles: Mapping[str, dict[str, Any]], bars: str, save: _Saver, stem: Path) -> None:
    plt = _pyplot()
    fig, axes, losses = _panels(plt, cells)
    col = f"acc:{metric}"
    for ax, loss in zip(axes[0], losses):
        part = cells[(cells["loss"] == loss) & cells[col].notna() & cells[axis].notna()]
        x_all = (part[axis] * dense_cost(cells, axis)).to_numpy()
        absolute = not np.isnan(x_all).all()
        if not absolute:
            x_all = part[axis].to_numpy()
        part = part.assign(_x=x_all)
        names = list(dict.fromkeys(part["label"]))
        shift = dict(zip(names, _offsets(len(names)) * _DX_LOG))
        for name, g in part.groupby("label", sort=False):
            g = g.sort_values("_x")
            y, err = _bars(list(g[col]))
            dense = (g["granularity"] == "none").all()
            st = dict(styles.get(name, {}))
            if dense:
                st["marker"] = "*"
            ax.errorbar(g["_x"] * (1 + shift[name]), y, yerr=err, ms=9 if dense else 4.5,
                        capsize=2.5, lw=1.2, elinewidth=0.9, label=name, **st)
        if len(part):
            fx, fy = _front(part["_x"].to_numpy(), np.array([100 * iv.mean for iv in part[col]]))
            ax.step(fx, fy, where="post", color="gray", ls=":", lw=1.5, label="Pareto front",
                    zorder=0)
        ax.set_xscale("log")
        _widen(ax, part["_x"].to_numpy(float), len(names), True)
        if absolute:
            _log_ticks(ax)
        ax.set_title(f"{title}: {loss}", fontsize=9)
        what = "MACs" if axis == "rel_macs" else "non-zero parameters"
        ax.set_xlabel(f"{what} (log scale)" if absolute else f"{what} relative to dense (log)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    _label_y(axes, label, bars)
    save(plt, fig, stem)


def _label_y(axes: Any, label: str, bars: str) -> None:
    """The y label names the metric and what the error bars are."""
    axes[0][0].set_ylabel(f"{label} accuracy (%)\nerror bars: {bars}", fontsize=8)
