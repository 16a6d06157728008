"""Paper-style tables from ``results.csv`` (Markdown or LaTeX) plus plots (bench/plots.py).

Tables (one set per dataset x model): rows ``loss x method`` (a grid ``variant`` such as
``d2bc.thres=0.2`` is appended to the method label), columns ``sparsity x {clean, PGD, APGD, AA}``
in percent; cells are ``mean ± std`` (sample std, ddof=1) when a cell has more than one run
(seeds or folds), else the single value. Dense runs (sparsity 0) appear once per loss, in the
``0%`` column. A second table gives measured weight sparsity, MACs reduction and parameter count
per cell; failed runs are listed separately with their one-line errors.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Report", "report", "load_results", "accuracy_table", "efficiency_table", "render",
           "ACC_METRICS", "summary_line"]

log = logging.getLogger(__name__)

#: result column -> table label
ACC_METRICS: dict[str, str] = {"clean_acc": "clean", "pgd_acc": "PGD", "apgd_acc": "APGD",
                               "aa_acc": "AA"}
EFF_METRICS: dict[str, str] = {"weight_sparsity": "W-sparsity %", "macs_reduction": "MACs red. %",
                               "params": "params"}
_CELL_KEYS = ["dataset", "model", "loss", "method", "variant", "target_sparsity"]
_NUMERIC = ["target_sparsity", "weight_sparsity", "macs_reduction", "params", "macs", "eps",
            "n_eval", "clean_acc", "pgd_acc", "apgd_acc", "aa_acc", "worst_acc", "train_s",
            "eval_s"]


@dataclass
class Report:
    """The rendered report: display tables by name, the full text, plot files, failed runs."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    text: str = ""
    plots: list[Path] = field(default_factory=list)
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_ok: int = 0


def load_results(csv_path: str | Path) -> pd.DataFrame:
    """Read a results CSV (under its lock, via :class:`ResultsStore`) into a typed frame."""
    from prunekit.bench.store import ResultsStore

    path = Path(csv_path)
    if not path.exists():
        raise FileNotFoundError(f"results file not found: {path}")
    rows = ResultsStore(path).rows()
    from prunekit.bench.store import COLUMNS

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in _NUMERIC:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["variant"] = df["variant"].fillna("")
    return df


# -- aggregation ---------------------------------------------------------------------------------
def _fmt(mean: float, std: float, n: int, scale: float, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    s = f"{mean * scale:.{digits}f}"
    if n > 1 and std is not None and not math.isnan(std):
        s += f" ± {std * scale:.{digits}f}"
    return s


def _sp_label(sp: float) -> str:
    return f"{sp * 100:g}%"


def _method_label(method: str, variant: str) -> str:
    return f"{method} ({variant})" if variant else method


def _wide(df: pd.DataFrame, metrics: dict[str, str], scales: dict[str, float],
          digits: dict[str, int]) -> pd.DataFrame:
    """Rows (loss, method), columns (sparsity, metric label), cells 'mean ± std'."""
    present = [m for m in metrics if df[m].notna().any()]
    if not present or df.empty:
        return pd.DataFrame()
    g = df.groupby(_CELL_KEYS, dropna=False, sort=False)
    agg = g[present].agg(["mean", "std", "count"])
    methods_order = _method_order(df)
    cells: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    sparsities = sorted(df["target_sparsity"].dropna().unique())
    for key, rec in agg.iterrows():
        _, _, loss, method, variant, sp = key
        row = cells.setdefault((loss, _method_label(method, variant)), {})
        for m in present:
            row[(_sp_label(sp), metrics[m])] = _fmt(rec[(m, "mean")], rec[(m, "std")],
                                                     int(rec[(m, "count")]), scales.get(m, 1.0),
                                                     digits.get(m, 2))
    cols = pd.MultiIndex.from_tuples([(_sp_label(sp), metrics[m]) for sp in sparsities
                                      for m in present], names=["sparsity", "metric"])
    index = sorted(cells, key=lambda k: (_first_seen(df["loss"], k[0]),
                                          methods_order.get(k[1].split(" (")[0], 99), k[1]))
    out = pd.DataFrame([[cells[i].get(c, "") for c in cols] for i in index], columns=cols,
                       index=pd.MultiIndex.from_tuples(index, names=["loss", "method"]))
    # drop sparsity groups that are empty in every row
    keep = [c for c in cols if (out[c] != "").any()]
    return out[keep]


def _first_seen(series: pd.Series, value: Any) -> int:
    vals = list(dict.fromkeys(series.tolist()))
    return vals.index(value) if value in vals else len(vals)


def _method_order(df: pd.DataFrame) -> dict[str, int]:
    pref = ["dense", "d2bc", "anas-p", "hydra", "hydra-channel", "admm"]
    order = {m: i for i, m in enumerate(pref)}
    for m in dict.fromkeys(df["method"].tolist()):
        order.setdefault(m, len(order))
    return order


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Clean / PGD / APGD / AA accuracy (percent) of the ``ok`` rows of ``df``."""
    return _wide(df, ACC_METRICS, {m: 100.0 for m in ACC_METRICS}, {m: 2 for m in ACC_METRICS})


def efficiency_table(df: pd.DataFrame) -> pd.DataFrame:
    """Measured weight sparsity (%), MACs reduction (%) and parameter count."""
    return _wide(df, EFF_METRICS, {"weight_sparsity": 100.0, "macs_reduction": 100.0,
                                   "params": 1.0}, {"weight_sparsity": 1, "macs_reduction": 1,
                                                    "params": 0})


# -- rendering -------------------------------------------------------------------------------------
def _md(table: pd.DataFrame) -> str:
    heads = list(table.index.names) + [f"{sp} {m}" for sp, m in table.columns]
    lines = ["| " + " | ".join(heads) + " |",
             "|" + "|".join(["---"] * len(table.index.names) + ["---:"] * len(table.columns)) + "|"]
    for idx, rec in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        lines.append("| " + " | ".join([str(i) for i in idx] + [str(v) for v in rec]) + " |")
    return "\n".join(lines)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("±", r"$\pm$"), ("–", "--")):
        s = s.replace(a, b)
    return s


def _latex(table: pd.DataFrame, caption: str) -> str:
    nidx = len(table.index.names)
    groups: list[tuple[str, int]] = []
    for sp, _ in table.columns:
        if groups and groups[-1][0] == sp:
            groups[-1] = (sp, groups[-1][1] + 1)
        else:
            groups.append((sp, 1))
    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex_escape(caption)}}}",
             r"\begin{tabular}{" + "l" * nidx + "r" * len(table.columns) + "}", r"\toprule",
             " & " * nidx + " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{_tex_escape(sp)}}}"
                                       for sp, n in groups) + r" \\"]
    start = nidx + 1
    rules = []
    for _, n in groups:
        rules.append(f"\\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    lines.append(" ".join(rules))
    lines.append(" & ".join([_tex_escape(str(n)) for n in table.index.names]
                            + [_tex_escape(m) for _, m in table.columns]) + r" \\")
    lines.append(r"\midrule")
    for idx, rec in table.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        lines.append(" & ".join([_tex_escape(str(i)) for i in idx]
                                + [_tex_escape(str(v)) for v in rec]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def render(table: pd.DataFrame, fmt: str = "md", caption: str = "") -> str:
    """One table as Markdown (``md``) or a booktabs LaTeX ``table`` (``latex``)."""
    if fmt == "md":
        return (f"**{caption}**\n\n" if caption else "") + _md(table)
    if fmt == "latex":
        return _latex(table, caption)
    raise ValueError(f"format must be md or latex, got {fmt!r}")


# -- the whole report ----------------------------------------------------------------------------
def report(csv_path: str | Path, fmt: str = "md", plots_dir: str | Path | None = None) -> Report:
    """Tables (and, with ``plots_dir``, PNG plots) for a results CSV."""
    if fmt not in ("md", "latex"):
        raise ValueError(f"format must be md or latex, got {fmt!r}")
    df = load_results(csv_path)
    ok = df[df["status"] == "ok"]
    failed = df[df["status"] != "ok"][["run_id", "method", "loss", "target_sparsity", "error"]]
    rep = Report(failed=failed.reset_index(drop=True), n_ok=len(ok))
    parts: list[str] = []
    for (dataset, model), sub in ok.groupby(["dataset", "model"], sort=False):
        eps = sorted(sub["eps"].dropna().unique())
        eps_txt = ", ".join(f"{e:.4g}" for e in eps)
        n_eval = sorted(int(n) for n in sub["n_eval"].dropna().unique())
        what = f"{dataset} / {model} (eps {eps_txt}; n_eval {', '.join(map(str, n_eval))})"
        for name, builder, title in (("accuracy", accuracy_table, "accuracy (%)"),
                                     ("efficiency", efficiency_table, "measured sparsity")):
            t = builder(sub)
            if t.empty:
                continue
            key = f"{name}:{dataset}:{model}"
            rep.tables[key] = t
            parts.append(render(t, fmt, caption=f"{what}: {title}"))
    if not parts:
        parts.append("(no finished runs)")
    if len(failed):
        lines = [f"Failed runs ({len(failed)}):"]
        lines += [f"- {r.run_id}: {r.error}" for r in failed.itertuples()]
        if fmt == "latex":
            lines = ["% " + ln for ln in lines]
        parts.append("\n".join(lines))
    rep.text = "\n\n".join(parts) + "\n"
    if plots_dir is not None and len(ok):
        from prunekit.bench.plots import make_plots

        rep.plots = make_plots(ok, Path(plots_dir))
    return rep


def summary_line(rep: Report) -> str:
    """One line: how many runs are in the report."""
    return f"{rep.n_ok} finished runs, {len(rep.failed)} failed"
