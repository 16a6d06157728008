"""Plots of a results frame (matplotlib, Agg backend; PNG files).

- ``acc_vs_sparsity_<metric>[_<dataset>_<model>].png``: accuracy (%) vs target sparsity for each
  of clean / PGD / APGD / AA, one panel per loss, one line per method (mean, error bar = std over
  seeds / folds); dense runs as a dashed horizontal reference line.
- ``robust_vs_macs[_<dataset>_<model>].png``: robust accuracy (AA if measured, else APGD, else
  PGD; %) vs MACs on a log axis, one panel per loss, one line per method, dense as a star.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["make_plots"]

log = logging.getLogger(__name__)

_LABELS = {"clean_acc": "clean", "pgd_acc": "PGD", "apgd_acc": "APGD", "aa_acc": "AutoAttack"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label(method: str, variant: str) -> str:
    return f"{method} ({variant})" if variant else method


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def make_plots(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the plots for the ``ok`` rows in ``df``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    combos = list(df.groupby(["dataset", "model"], sort=False))
    files: list[Path] = []
    for (dataset, model), sub in combos:
        suffix = "" if len(combos) == 1 else f"_{_slug(dataset)}_{_slug(model)}"
        for metric in _LABELS:
            if sub[metric].notna().any():
                files.append(_acc_vs_sparsity(sub, metric, out_dir, suffix, f"{dataset} / {model}"))
        robust = next((m for m in ("aa_acc", "apgd_acc", "pgd_acc") if sub[m].notna().any()), None)
        if robust is not None and sub["macs"].notna().any():
            files.append(_robust_vs_macs(sub, robust, out_dir, suffix, f"{dataset} / {model}"))
    log.info("wrote %d plots to %s", len(files), out_dir)
    return files


def _agg(sub: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    keys = ["loss", "method", "variant", "target_sparsity"]
    return sub.groupby(keys, sort=False, dropna=False)[cols].agg(["mean", "std"]).reset_index()


def _acc_vs_sparsity(sub: pd.DataFrame, metric: str, out_dir: Path, suffix: str,
                     title: str) -> Path:
    plt = _pyplot()
    losses = list(dict.fromkeys(sub["loss"]))
    agg = _agg(sub, [metric])
    fig, axes = plt.subplots(1, len(losses), figsize=(4.5 * len(losses), 3.6), squeeze=False,
                             sharey=True)
    for ax, loss in zip(axes[0], losses):
        part = agg[agg["loss"] == loss]
        for (method, variant), g in part.groupby(["method", "variant"], sort=False):
            g = g.sort_values("target_sparsity")
            mean = g[(metric, "mean")] * 100
            std = g[(metric, "std")].fillna(0) * 100
            if (g["target_sparsity"] == 0).all() and len(part["target_sparsity"].unique()) > 1:
                ax.axhline(float(mean.iloc[0]), ls="--", color="gray",
                           label=_label(method, variant))
                continue
            ax.errorbar(g["target_sparsity"] * 100, mean, yerr=std, marker="o", capsize=3,
                        label=_label(method, variant))
        ax.set_title(f"{title} — {loss}")
        ax.set_xlabel("target sparsity (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(plt, fig, axes, metric,
                   out_dir / f"acc_vs_sparsity_{metric.removesuffix('_acc')}{suffix}.png")


def _robust_vs_macs(sub: pd.DataFrame, metric: str, out_dir: Path, suffix: str,
                    title: str) -> Path:
    plt = _pyplot()
    losses = list(dict.fromkeys(sub["loss"]))
    agg = _agg(sub, [metric, "macs"])
    fig, axes = plt.subplots(1, len(losses), figsize=(4.5 * len(losses), 3.6), squeeze=False,
                             sharey=True)
    for ax, loss in zip(axes[0], losses):
        part = agg[agg["loss"] == loss]
        for (method, variant), g in part.groupby(["method", "variant"], sort=False):
            g = g.sort_values(("macs", "mean"))
            x = g[("macs", "mean")]
            y = g[(metric, "mean")] * 100
            if method == "dense":
                ax.scatter(x, y, marker="*", s=120, color="black", label=_label(method, variant),
                           zorder=3)
            else:
                ax.plot(x, y, marker="o", label=_label(method, variant))
        ax.set_xscale("log")
        ax.set_title(f"{title} — {loss}")
        ax.set_xlabel("MACs (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return _finish(plt, fig, axes, metric, out_dir / f"robust_vs_macs{suffix}.png")


def _finish(plt: Any, fig: Any, axes: Any, metric: str, path: Path) -> Path:
    """Shared tail of every figure: y label, layout, save, close."""
    axes[0][0].set_ylabel(f"{_LABELS[metric]} accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
