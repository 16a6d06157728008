"""ResultsStore: schema order, atomic appends from several processes, supersede failed rows."""
from __future__ import annotations

import csv
import os
import multiprocessing as mp
from pathlib import Path

import pytest

from prunekit.bench.store import COLUMNS, SCHEMA, ResultsStore, SchemaError

DESIGN_SCHEMA = (
    "run_id, method, granularity, loss, dataset, model, target_sparsity, weight_sparsity, "
    "macs_reduction, params, macs, seed, fold, eps, n_eval, clean_acc, pgd_acc, apgd_acc, "
    "aa_acc, worst_acc, train_s, eval_s, status, error, config_hash, git_sha, prunekit_version, "
    "torch_version, device").split(", ")


def row(run_id: str, status: str = "ok", **kw) -> dict:
    return {"run_id": run_id, "status": status, "method": "d2bc", "clean_acc": 0.5, **kw}


def read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_schema_is_design_order_then_extras() -> None:
    assert list(SCHEMA) == DESIGN_SCHEMA
    assert list(COLUMNS[:len(SCHEMA)]) == DESIGN_SCHEMA
    assert len(set(COLUMNS)) == len(COLUMNS)


def test_append_skip_and_supersede(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r" / "results.csv")
    assert store.finished_run_ids() == set()
    assert store.append(row("a", error="x,\"y\"\nz"))
    assert store.append(row("b", "failed", error="RuntimeError: nan"))
    assert store.append(row("c"))
    with open(store.path) as fh:
        assert fh.readline().rstrip("\n").split(",") == list(COLUMNS)
    assert store.finished_run_ids() == {"a", "c"}
    assert not store.append(row("a"))                     # never a second ok row
    assert store.append(row("b", "failed", error="again"))  # replaces the failed row
    assert store.append(row("b"))                          # ok replaces failed
    rows = read(store.path)
    assert [r["run_id"] for r in rows] == ["a", "c", "b"]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert rows[0]["error"] == 'x,"y" z'                  # one line, CSV-quoted
    assert rows[0]["pgd_acc"] == ""                       # missing -> empty


def test_rejects_bad_rows_and_foreign_files(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    with pytest.raises(SchemaError, match="no_such_col"):
        store.append(row("a", no_such_col=1))
    with pytest.raises(SchemaError, match="status"):
        store.append(row("a", status="done"))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SchemaError, match="header"):
        ResultsStore(tmp_path / "other.csv").rows()


def test_nan_is_written_empty(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    store.append(row("a", aa_acc=float("nan")))
    assert read(store.path)[0]["aa_acc"] == ""


def _writer(path: str, k: int, n: int) -> None:
    store = ResultsStore(path)
    for i in range(n):
        # long error strings make interleaving visible if writes were not atomic
        store.append(row(f"w{k}-{i}", "failed" if i % 5 == 0 else "ok", error="e" * 2000))
    # every writer also retries its failed rows (exercises the rewrite path under contention)
    for i in range(0, n, 5):
        store.append(row(f"w{k}-{i}"))


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), k, 20)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = read(path)
    ids = [r["run_id"] for r in rows]
    assert len(ids) == 60 == len(set(ids))
    assert all(r["status"] == "ok" for r in rows)
    assert all(len(r) == len(COLUMNS) and None not in r for r in rows)


def test_v1_header_is_read_but_never_appended_to(tmp_path):
    from prunekit.bench.store import _V1_COLUMNS, SchemaError
    path = tmp_path / "results.csv"
    path.write_text(",".join(_V1_COLUMNS) + "\n" + ",".join(
        "r1" if c == "run_id" else "ok" if c == "status" else "" for c in _V1_COLUMNS) + "\n")
    store = ResultsStore(path)
    (row,) = store.rows()
    assert row["run_id"] == "r1" and row["robust_acc"] == "" and row["examples"] == ""
    before = path.read_bytes()
    with pytest.raises(SchemaError):
        store.append({"run_id": "r2", "status": "ok"})
    assert path.read_bytes() == before


def test_malformed_line_is_quarantined_once_with_its_bytes(tmp_path, caplog):
    path = tmp_path / "results.csv"
    store = ResultsStore(path)
    store.append(row("a"))
    bad = b'half,a,line,"with quotes"\r\n'
    with open(path, "ab") as fh:
        fh.write(bad)
    store.append(row("b"))  # the writer quarantines it too (under the lock)
    assert [r["run_id"] for r in store.rows()] == ["a", "b"]
    assert store.quarantine_path.read_bytes() == bad          # exact bytes kept
    with open(path, "ab") as fh:
        fh.write(b"another,bad\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert [r["run_id"] for r in store.rows()] == ["a", "b"]
        assert [r["run_id"] for r in store.rows()] == ["a", "b"]
    moved = [r for r in caplog.records if "moved 1 malformed" in r.getMessage()]
    assert len(moved) == 1 and len(caplog.records) == 1       # warned once, not on every read
    assert store.quarantine_path.read_bytes() == bad + b"another,bad\n"
    assert b"bad" not in path.read_bytes()


def test_reads_take_no_lock_and_skip_a_row_being_written(tmp_path):
    path = tmp_path / "results.csv"
    ResultsStore(path).append(row("a"))
    (tmp_path / "results.csv.lock").unlink(missing_ok=True)
    with open(path, "ab") as fh:
        fh.write(b"b,d2bc,ch")                                 # a line still being written
    store = ResultsStore(path)
    assert store.finished_run_ids() == {"a"}
    assert sorted(os.listdir(tmp_path)) == ["results.csv"]    # no lock file, no quarantine
    assert ResultsStore(path, readonly=True).rows()[0]["run_id"] == "a"
    with pytest.raises(SchemaError, match="read-only"):
        ResultsStore(path, readonly=True).append(row("c"))


def test_an_edited_file_without_final_newline_keeps_its_last_row(tmp_path):
    path = tmp_path / "results.csv"
    ResultsStore(path).append(row("a"))
    ResultsStore(path).append(row("b"))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert [r["run_id"] for r in ResultsStore(path).rows()] == ["a", "b"]
    assert ResultsStore(path).append(row("c"))
    assert [r["run_id"] for r in read(path)] == ["a", "b", "c"]


@pytest.mark.parametrize("content, match", [(bytes(range(256)), "binary data"),
                                            (b"\xff\xfeh\x00i", "binary data"),
                                            ("é,ß".encode("latin-1") + b"\n", "not UTF-8")])
def test_binary_files_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "results.csv"
    path.write_bytes(content)
    with pytest.raises(SchemaError, match=match):
        ResultsStore(path).rows()
    with pytest.raises(SchemaError, match="is a directory"):
        ResultsStore(tmp_path).rows()
