"""``prunekit report DIR/results.csv``: paper-style tables and plots (docs/bench.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from prunekit.commands import _args
from prunekit.errors import ConfigError
from prunekit.paths import describe, output_dir, output_file


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="tables (Markdown/LaTeX) and plots from a results.csv")
    p.add_argument("csv", help="results.csv written by `prunekit bench`")
    p.add_argument("--format", choices=("md", "latex"), default="md")
    p.add_argument("--plots", default=None, metavar="DIR", help="write the plots here")
    p.add_argument("--plot-format", default="png", metavar="LIST",
                   help="comma-separated plot formats: png, pdf, svg (default png)")
    p.add_argument("--dpi", type=_args.positive_int, default=200,
                   help="resolution of PNG plots (default 200)")
    p.add_argument("--intervals", choices=("full", "half", "none"), default=None,
                   help="how tables print 95 %% intervals: full (mean, std, [lo, hi]), half "
                        "(mean ± half-width), none (means); default full for md, half for latex")
    p.add_argument("--out", default=None, metavar="FILE", help="write the tables here too")
    p.add_argument("--csv", default=None, metavar="DIR", dest="csv_dir",
                   help="also write every table as DIR/<table>.csv and all paired comparisons "
                        "as numbers in DIR/comparisons.csv")
    stats = p.add_argument_group("statistics (docs/bench.md#statistics)")
    stats.add_argument("--versus", default=None, metavar="METHOD",
                       help="reference method(s) of the paired comparisons, comma-separated "
                            "(e.g. dense,random-channel; one of another model family, e.g. "
                            "lrnas, is paired across families on the same examples); default: "
                            "dense, else the first method of each table")
    stats.add_argument("--metrics", default="clean,worst", metavar="LIST",
                       help="comma-separated metrics compared against the reference: clean, "
                            "worst, or attack names (default: clean,worst)")
    stats.add_argument("--bootstrap", type=int, default=9999, metavar="N",
                       help="paired-bootstrap resamples (default 9999; seed 0)")
    p.set_defaults(func=run)
    return p


def _is_report(csv: str) -> Callable[[Path], bool]:
    """An existing ``--out`` file may be replaced only by a report: it must be text, not the
    input CSV, and not any other results CSV or data file."""
    def check(path: Path) -> bool:
        same = Path(csv).exists() and path.resolve() == Path(csv).resolve()
        return not same and describe(path) == "a text file"
    return check


def run(args: argparse.Namespace) -> int:
    from prunekit.bench.report import report, summary_line  # deferred: pandas/scipy (report)

    if args.bootstrap < 100:
        raise ConfigError(f"--bootstrap must be >= 100, got {args.bootstrap}")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    formats = [f.strip().lower() for f in args.plot_format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise ConfigError(f"--plot-format {args.plot_format!r}: valid formats png, pdf, svg")
    # check the outputs first: nothing is computed for a report that cannot be written
    if args.out:
        output_file(args.out, "--out", "a report (text)", _is_report(args.csv))
    if args.plots:
        output_dir(args.plots, "--plots")
    if args.csv_dir:
        output_dir(args.csv_dir, "--csv")
    rep = report(args.csv, fmt=args.format, plots_dir=args.plots, versus=args.versus,
                 metrics=metrics, n_resamples=args.bootstrap, intervals=args.intervals,
                 plot_formats=formats, dpi=args.dpi)
    print(rep.text, end="")
    if args.out:
        Path(args.out).write_text(rep.text)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.csv_dir:
        from prunekit.bench.csvout import write_csv_tables  # deferred: pandas (report)
        for p in write_csv_tables(rep, Path(args.csv_dir)):
            print(f"wrote {p}", file=sys.stderr)
    for p in rep.plots:
        print(f"wrote {p}", file=sys.stderr)
    print(summary_line(rep), file=sys.stderr)
    return 0
