"""Benchmark harness: grid expansion, runner, results store (CSV), report (tables, plots).

See docs/bench.md (grid format, sharding, resume) and docs/results-schema.md (CSV columns).
"""
from __future__ import annotations

from prunekit.bench.grid import Grid, GridRun, expand, load_grid, parse_shard, shard_runs
from prunekit.bench.report import Report, report
from prunekit.bench.runner import GridSummary, pipeline_run, run_grid
from prunekit.bench.store import COLUMNS, SCHEMA, ResultsStore

__all__ = ["Grid", "GridRun", "expand", "load_grid", "parse_shard", "shard_runs", "run_grid",
           "GridSummary", "pipeline_run", "ResultsStore", "SCHEMA", "COLUMNS", "Report",
           "report"]
