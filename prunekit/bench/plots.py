"""Plots of the report's cells (matplotlib, Agg backend; PNG files). Error bars are the cells'
95 % intervals (Wilson over examples for one run, t-interval over seeds/folds for several).

- ``acc_vs_sparsity_<metric>[_<group>].png``: accuracy (%) vs target sparsity for ``clean``,
  every attack that ran (file named by the attack) and ``worst``; one panel per loss, one line per
  method, the legend saying what each method's sparsity targets (``macs``, ``weights``, ...);
  dense runs as a dashed horizontal line. The x axis is *not* a cost axis: see the Pareto plots.
- ``pareto_macs[_<group>].png``, ``pareto_params[_<group>].png``: worst-case robust accuracy
  (%) vs measured MACs / non-zero parameters on a log axis, one panel per loss, one line per
  method (in cost order), and the Pareto front over all methods (points no other point beats at
  lower or equal cost) as a grey step line.

``<group>`` = ``<dataset>_<model>_eps<eps>``, only when the CSV holds several groups.
"""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from prunekit.bench.cells import dense_cost
from prunekit.bench.labels import WORST

__all__ = ["make_plots"]

log = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def make_plots(groups: Mapping[str, tuple[pd.DataFrame, dict[str, str]]],
               out_dir: Path) -> list[Path]:
    """Write the plots of every group (``key -> (cells, metric labels)``, from the report);
    returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for key, (cells, labels) in groups.items():
        dataset, model, eps = key.split(":")
        suffix = "" if len(groups) == 1 else f"_{_slug(dataset)}_{_slug(model)}_eps{eps}"
        title = f"{dataset} / {model} (eps {eps})"
        for metric, label in labels.items():
            files.append(_acc_vs_sparsity(cells, metric, label, title,
                                          out_dir / f"acc_vs_sparsity_{_slug(metric)}{suffix}.png"))
        robust = WORST if WORST in labels else list(labels)[-1]
        for axis, name in (("rel_macs", "macs"), ("rel_params", "params")):
            if cells[axis].notna().any():
                files.append(_pareto(cells, robust, labels[robust], axis, title,
                                     out_dir / f"pareto_{name}{suffix}.png"))
    log.info("wrote %d plots to %s", len(files), out_dir)
    return files


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
                     path: Path) -> Path:
    plt = _pyplot()
    fig, axes, losses = _panels(plt, cells)
    col = f"acc:{metric}"
    for ax, loss in zip(axes[0], losses):
        part = cells[(cells["loss"] == loss) & cells[col].notna()]
        several = part["target_sparsity"].nunique() > 1
        for name, g in part.groupby("label", sort=False):
            g = g.sort_values("target_sparsity")
            y, err = _bars(list(g[col]))
            if (g["granularity"] == "none").all() and several:
                ax.axhline(float(y[0]), ls="--", color="gray", label=name)
                continue
            tgt = g["sp_target"].iloc[0]
            ax.errorbar(g["target_sparsity"] * 100, y, yerr=err, marker="o", capsize=3,
                        label=f"{name} ({tgt})" if tgt and tgt != "none" else name)
        ax.set_title(f"{title} — {loss}", fontsize=9)
        ax.set_xlabel("target sparsity (%) of what the method targets")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(plt, fig, axes, label, path)


def _front(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Points no other point beats at lower or equal cost, in cost order."""
    fx, fy, best = [], [], -math.inf
    for i in np.lexsort((-y, x)):
        if y[i] > best:
            fx.append(float(x[i]))
            fy.append(float(y[i]))
            best = y[i]
    return fx, fy


def _pareto(cells: pd.DataFrame, metric: str, label: str, axis: str, title: str,
            path: Path) -> Path:
    plt = _pyplot()
    fig, axes, losses = _panels(plt, cells)
    col = f"acc:{metric}"
    for ax, loss in zip(axes[0], losses):
        part = cells[(cells["loss"] == loss) & cells[col].notna() & cells[axis].notna()]
        x_all = (part[axis] * dense_cost(cells, axis)).to_numpy()
        if np.isnan(x_all).all():
            x_all = part[axis].to_numpy()
        part = part.assign(_x=x_all)
        ys = []
        for name, g in part.groupby("label", sort=False):
            g = g.sort_values("_x")
            y, err = _bars(list(g[col]))
            ys.append(y)
            ax.errorbar(g["_x"], y, yerr=err, marker="*" if (g["granularity"] == "none").all()
                        else "o", ms=9 if (g["granularity"] == "none").all() else 5, capsize=3,
                        label=name)
        if len(part):
            fx, fy = _front(part["_x"].to_numpy(), np.array([100 * iv.mean for iv in part[col]]))
            ax.step(fx, fy, where="post", color="gray", ls=":", lw=1.5, label="Pareto front",
                    zorder=0)
        ax.set_xscale("log")
        ax.set_title(f"{title} — {loss}", fontsize=9)
        ax.set_xlabel("MACs (log)" if axis == "rel_macs" else "non-zero parameters (log)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return _finish(plt, fig, axes, label, path)


def _finish(plt: Any, fig: Any, axes: Any, label: str, path: Path) -> Path:
    """Shared tail of every figure: y label, layout, save, close."""
    axes[0][0].set_ylabel(f"{label} accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
