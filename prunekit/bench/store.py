"""The results CSV: one row per run, written atomically under a file lock.

Schema: DESIGN.md's columns in that order, then documented extras (docs/results-schema.md).
Invariant: the file holds **at most one row per run_id** -- the latest attempt. A new ``ok`` row
for a run_id that already has an ``ok`` row is refused; a row for a run_id whose previous row
failed replaces that row (the file is rewritten to a temporary file and ``os.replace``-d, under
the lock); any other row is appended with a single ``write`` + ``fsync`` of the whole line, so
concurrent writers (shards, SLURM array tasks) never interleave.

Readers take **no lock** and create no file, so a results CSV on a read-only directory (shared
results, ``--dry-run``) can be read: every change is an atomic replace or one appended line, so a
reader sees a consistent snapshot; an unterminated last line that does not parse is a row being
written and is left to its writer. A complete line with the wrong number of fields (never written
by prunekit: a hand edit, a foreign tool) is **quarantined** once, under the lock: its exact bytes
are appended to ``results.csv.quarantine`` and it is removed from the CSV, with one warning. On a
read-only directory it is only skipped (with a warning). A directory, binary data or a foreign
header is a one-line :class:`SchemaError`.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from filelock import FileLock

from prunekit.atomic import WriteError, atomic_open, write_all
from prunekit.errors import UserError
from prunekit.paths import is_writable_dir, output_dir

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
    # schema v3 (docs/results-schema.md)
    "nonzero_params", "train_epochs", "train_passes", "train_cpu_s", "certified_acc", "plugins",
)
#: extras of the first released schema (files with this header are still read, never appended to)
_V1_COLUMNS: tuple[str, ...] = SCHEMA + EXTRA_COLUMNS[:6]
#: the second schema (prunekit 0.2): read, never appended to
_V2_COLUMNS: tuple[str, ...] = SCHEMA + EXTRA_COLUMNS[:11]
_OLD_HEADERS = {_V1_COLUMNS: "v1", _V2_COLUMNS: "v2"}
COLUMNS: tuple[str, ...] = SCHEMA + EXTRA_COLUMNS

STATUSES = ("ok", "failed")


class SchemaError(UserError, ValueError):
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


@dataclass
class _Parsed:
    """One read of the CSV: header line, good rows with their raw lines, malformed lines."""

    header: bytes = b""
    rows: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    bad: list[tuple[int, bytes]] = field(default_factory=list)


class ResultsStore:
    """Append-only-ish CSV of run results (see the module docstring for the invariant).

    ``readonly=True``: never lock, write or quarantine (``bench --dry-run``).

    Example::

        store = ResultsStore("runs/fmnist/results.csv")
        if "trades-d2bc-s0.9-seed0-1a2b3c4d" not in store.finished_run_ids():
            store.append({"run_id": ..., "status": "ok", ...})
    """

    def __init__(self, csv_path: str | Path, timeout: float = 600.0,
                 readonly: bool = False) -> None:
        self.path = Path(csv_path)
        self.readonly = readonly
        self.lock = FileLock(str(self.path) + ".lock", timeout=timeout)

    @property
    def quarantine_path(self) -> Path:
        """Where malformed lines are moved, bytes unchanged."""
        return self.path.with_name(self.path.name + ".quarantine")

    # -- reading ---------------------------------------------------------------------------
    def _parse(self, for_writing: bool = False, locked: bool = False) -> _Parsed:
        if self.path.is_dir():
            raise SchemaError(f"{self.path} is a directory, not a results CSV; give the "
                              f"results.csv file inside it")
        try:
            data = self.path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # not written yet
            return _Parsed()
        if b"\x00" in data:
            raise self._foreign("it holds binary data")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._foreign("it is not UTF-8 text") from None
        lines = data.splitlines(keepends=True)
        if not lines or not lines[0].strip():
            return _Parsed()
        header = next(csv.reader([lines[0].decode()]))
        self._check_header(header, reading=not for_writing)
        out = _Parsed(header=lines[0])
        for no, raw in enumerate(lines[1:], start=2):
            if not raw.strip():
                continue
            rec = next(csv.reader([raw.decode()]), [])
            if len(rec) == len(header):
                out.rows.append(({c: "" for c in COLUMNS} | dict(zip(header, rec)), raw))
            elif locked or raw.endswith(b"\n"):
                out.bad.append((no, raw))
            # else: an unterminated last line that does not parse -- a row being written
        return out

    def _foreign(self, why: str) -> SchemaError:
        return SchemaError(f"{self.path} is not a results CSV ({why}); give a results.csv "
                           f"written by prunekit bench or prunekit eval --csv")

    def _check_header(self, header: list[str], reading: bool = False) -> None:
        if tuple(header) == COLUMNS or (reading and tuple(header) in _OLD_HEADERS):
            return
        if tuple(header) in _OLD_HEADERS:
            raise SchemaError(f"{self.path} has the old {_OLD_HEADERS[tuple(header)]} header "
                              f"(docs/results-schema.md): it "
                              f"is read but never appended to; write to a new file (another "
                              f"--csv, or a new bench --out directory)")
        if reading:
            raise SchemaError(f"{self.path} is not a prunekit results CSV: its header does not "
                              f"match the results schema (docs/results-schema.md); give a "
                              f"results.csv written by prunekit bench or prunekit eval --csv")
        raise SchemaError(f"{self.path}: header does not match the results schema "
                          f"(docs/results-schema.md); write to a new file (another --csv, or "
                          f"a new bench --out directory)")

    def _read(self) -> list[dict[str, str]]:
        parsed = self._parse()
        if parsed.bad:
            self._quarantine(parsed.bad)
        return [r for r, _ in parsed.rows]

    def rows(self) -> list[dict[str, str]]:
        """All rows (strings, as on disk); no lock is taken (see the module docstring)."""
        return self._read()

    def finished_run_ids(self) -> set[str]:
        """run_ids with ``status == ok`` (a re-run skips these)."""
        return {r["run_id"] for r in self._read() if r["status"] == "ok"}

    def status_by_run_id(self) -> dict[str, str]:
        """run_id -> status of its (single) row."""
        return {r["run_id"]: r["status"] for r in self._read()}

    def _quarantine(self, bad: list[tuple[int, bytes]]) -> None:
        where = ", ".join(str(no) for no, _ in bad)
        if self.readonly or not is_writable_dir(self.path.parent):
            log.warning("%s: skipping %d malformed line(s) (line %s); the directory is not "
                        "writable, so they stay in the file", self.path, len(bad), where)
            return
        with self.lock:
            parsed = self._parse(locked=True)  # again, under the lock: what is really there
            self._quarantine_locked(parsed)

    def _quarantine_locked(self, parsed: _Parsed) -> _Parsed:
        """Move ``parsed.bad`` to the quarantine file and rewrite the CSV without them."""
        if not parsed.bad:
            return parsed
        blob = b"".join(raw if raw.endswith(b"\n") else raw + b"\n" for _, raw in parsed.bad)
        fd = os.open(self.quarantine_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            write_all(fd, blob, self.quarantine_path)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._rewrite_unlocked(parsed.header, [raw for _, raw in parsed.rows])
        log.warning("%s: moved %d malformed line(s) (line %s) to %s", self.path,
                    len(parsed.bad), ", ".join(str(no) for no, _ in parsed.bad),
                    self.quarantine_path)
        return dataclasses.replace(parsed, bad=[])

    # -- writing ---------------------------------------------------------------------------
    def check_appendable(self) -> None:
        """Fail now, with one line, if :meth:`append` would refuse this file later (a foreign
        or v1 header, binary data, a directory, an unwritable folder): call it before the
        expensive work whose row will be appended."""
        self._parse(for_writing=True)
        output_dir(self.path.parent, f"the folder of {self.path.name}")
        if self.path.exists():  # read-only or immutable (chattr +i): refuse before training
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
            except OSError as exc:
                raise WriteError(f"{self.path} cannot be appended to ({exc.strerror}); make it "
                                 f"writable (chmod u+w, chattr -i) or use a new --out") from None

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
        if self.readonly:
            raise SchemaError(f"{self.path} was opened read-only")
        line = _format_line(row).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            parsed = self._quarantine_locked(self._parse(for_writing=True, locked=True))
            mine = [r for r, _ in parsed.rows if r["run_id"] == run_id]
            if any(r["status"] == "ok" for r in mine):
                log.warning("%s already has an ok row for %s; not writing another", self.path,
                            run_id)
                return False
            if mine:  # supersede the failed attempt: rewrite without it, then add the new row
                keep = [raw for r, raw in parsed.rows if r["run_id"] != run_id]
                self._rewrite_unlocked(parsed.header, keep + [line])
            else:
                self._append_unlocked(line)
        return True

    def _header_line(self) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(COLUMNS)
        return buf.getvalue().encode()

    def _append_unlocked(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = line
            if os.fstat(fd).st_size == 0:
                data = self._header_line() + line
            else:
                self._repair_tail(fd)
            write_all(fd, data, self.path)  # one write of the whole line(s)
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
                write_all(fd, b"\n", self.path)

    def _rewrite_unlocked(self, header: bytes, lines: list[bytes]) -> None:
        """Replace the file by ``header`` + ``lines`` (raw bytes, kept exactly) atomically."""
        with atomic_open(self.path, "wb") as fh:
            fh.write(header.rstrip(b"\r\n") + b"\n" if header else self._header_line())
            for raw in lines:
                fh.write(raw if raw.endswith(b"\n") else raw + b"\n")
