"""The results CSV: one row per run, written atomically under a file lock.

Schema: DESIGN.md's columns in that order, then documented extras (docs/results-schema.md).
Invariant: the file holds **at most one row per run_id** -- the latest attempt. A new ``ok`` row
for a run_id that already has an ``ok`` row is refused; a row for a run_id whose previous row
failed replaces that row (the file is rewritten to a temporary file and ``os.replace``-d, under
the lock); any other row is appended with a single ``write`` + ``flush`` + ``fsync`` of the whole
line, so concurrent writers (shards, SLURM array tasks) never interleave. Readers take the same
lock, so they never see a half-rewritten file.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from filelock import FileLock

__all__ = ["SCHEMA", "EXTRA_COLUMNS", "COLUMNS", "ResultsStore", "SchemaError"]

log = logging.getLogger(__name__)

#: DESIGN.md's schema, in this exact order
SCHEMA: tuple[str, ...] = (
    "run_id", "method", "granularity", "loss", "dataset", "model", "target_sparsity",
    "weight_sparsity", "macs_reduction", "params", "macs", "seed", "fold", "eps", "n_eval",
    "clean_acc", "pgd_acc", "apgd_acc", "aa_acc", "worst_acc", "train_s", "eval_s", "status",
    "error", "config_hash", "git_sha", "prunekit_version", "torch_version", "device",
)
#: prunekit's documented extras, appended after the schema
EXTRA_COLUMNS: tuple[str, ...] = (
    "checks", "attacks", "variant", "pretrain_hash", "grid", "finished_at",
    "sparsity_target", "params_reduction", "robust_acc", "examples", "method_summary",
)
#: extras of the first released schema (files with this header are still read, never appended to)
_V1_COLUMNS: tuple[str, ...] = SCHEMA + EXTRA_COLUMNS[:6]
COLUMNS: tuple[str, ...] = SCHEMA + EXTRA_COLUMNS

STATUSES = ("ok", "failed")


class SchemaError(ValueError):
    """The CSV on disk does not have prunekit's header (another file, or an older schema)."""


def _format_line(row: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in COLUMNS])
    return buf.getvalue()


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)  # empty = not measured  # shortest round-tripping form
    return str(v).replace("\r", " ").replace("\n", " ")


class ResultsStore:
    """Append-only-ish CSV of run results (see the module docstring for the invariant).

    Example::

        store = ResultsStore("runs/fmnist/results.csv")
        if "trades-d2bc-s0.9-seed0-1a2b3c4d" not in store.finished_run_ids():
            store.append({"run_id": ..., "status": "ok", ...})
    """

    def __init__(self, csv_path: str | Path, timeout: float = 600.0) -> None:
        self.path = Path(csv_path)
        self.lock = FileLock(str(self.path) + ".lock", timeout=timeout)

    # -- reading ---------------------------------------------------------------------------
    def _read_unlocked(self, for_writing: bool = False) -> list[dict[str, str]]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        with open(self.path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return []
            self._check_header(header, reading=not for_writing)
            rows = []
            for rec in reader:
                if len(rec) != len(header):  # never written by us; skip rather than crash
                    log.warning("%s: skipping malformed line %d", self.path, reader.line_num)
                    continue
                rows.append({c: "" for c in COLUMNS} | dict(zip(header, rec)))
            return rows

    def _check_header(self, header: list[str], reading: bool = False) -> None:
        if reading and tuple(header) == _V1_COLUMNS:
            return
        if tuple(header) != COLUMNS:
            raise SchemaError(f"{self.path}: header does not match the results schema "
                              f"(docs/results-schema.md); write to a new --out directory")

    def rows(self) -> list[dict[str, str]]:
        """All rows (strings, as on disk), read under the lock."""
        with self.lock:
            return self._read_unlocked()

    def finished_run_ids(self) -> set[str]:
        """run_ids with ``status == ok`` (a re-run skips these)."""
        return {r["run_id"] for r in self.rows() if r["status"] == "ok"}

    def status_by_run_id(self) -> dict[str, str]:
        """run_id -> status of its (single) row."""
        return {r["run_id"]: r["status"] for r in self.rows()}

    # -- writing ---------------------------------------------------------------------------
    def append(self, row: Mapping[str, Any]) -> bool:
        """Write ``row`` (missing columns empty; unknown keys are an error). Returns False, and
        writes nothing, if the run_id already has an ``ok`` row."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise SchemaError(f"unknown result column(s) {', '.join(sorted(unknown))}; see "
                              f"docs/results-schema.md")
        run_id = row.get("run_id")
        if not run_id:
            raise SchemaError("a result row needs a run_id")
        if row.get("status") not in STATUSES:
            raise SchemaError(f"status must be one of {', '.join(STATUSES)}, got "
                              f"{row.get('status')!r}")
        line = _format_line(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            existing = self._read_unlocked(for_writing=True)
            mine = [r for r in existing if r["run_id"] == run_id]
            if any(r["status"] == "ok" for r in mine):
                log.warning("%s already has an ok row for %s; not writing another", self.path,
                            run_id)
                return False
            if mine:  # supersede the failed attempt: rewrite without it, then add the new row
                keep = [r for r in existing if r["run_id"] != run_id]
                self._rewrite_unlocked(keep, extra_line=line)
            else:
                self._append_unlocked(line)
        return True

    def _header_line(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(COLUMNS)
        return buf.getvalue()

    def _append_unlocked(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = line
            if os.fstat(fd).st_size == 0:
                data = self._header_line() + line
            else:
                self._repair_tail(fd)
            os.write(fd, data.encode())  # one write of the whole line(s)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _repair_tail(self, fd: int) -> None:
        """A writer killed mid-write (only possible without our lock) could leave a partial
        last line; terminate it so our row starts on its own line."""
        size = os.fstat(fd).st_size
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                os.write(fd, b"\n")

    def _rewrite_unlocked(self, rows: list[dict[str, str]], extra_line: str = "") -> None:
        fd, tmp = tempfile.mkstemp(prefix=".results.", suffix=".csv", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="") as fh:
                fh.write(self._header_line())
                w = csv.writer(fh, lineterminator="\n")
                for r in rows:
                    w.writerow([r.get(c, "") for c in COLUMNS])
                fh.write(extra_line)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
