"""run_grid / `prunekit bench`: resume, failures, SIGKILL mid-grid, parallel shards.

Fast: a fake run function (tests/test_bench_fakes.py) stands in for training; the real smoke
grid end to end is in test_bench_smoke.py.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prunekit.bench.runner import RUN_FN_ENV, run_grid
from prunekit.bench.store import COLUMNS, SCHEMA
from prunekit.config import ConfigError
from prunekit.cli import main

from test_bench_fakes import fake_run

TESTS = Path(__file__).resolve().parent
FAKE = "test_bench_fakes:fake_run"
GRID = {
    "name": "fake",
    "base": {"data": {"dataset": "synthetic", "train_subset": 64},
             "model": {"name": "vgg-small", "width": 0.25},
             "eval": {"attacks": ["pgd-5-1"], "n_examples": 16}},
    "axes": {"method": ["dense", "admm"], "loss.name": ["trades", "mart"],
             "sparsity": [0.5, 0.9]},
    "rules": [{"where": {"method": "dense"}, "set": {"sparsity": 0.0}}],
}
N_RUNS = 6


def read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_grid(tmp_path: Path, grid: dict = GRID) -> Path:
    p = tmp_path / "grid.yaml"
    p.write_text(yaml.safe_dump(grid))
    return p


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), e.get("PYTHONPATH")]))
    e[RUN_FN_ENV] = FAKE
    e.update(extra)
    return e


def bench_cmd(grid: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "prunekit", "bench", str(grid), "--out", str(out), *args]


def test_rows_failures_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRUNEKIT_FAKE_FAIL", "admm")
    s = run_grid(GRID, tmp_path, run_fn=fake_run)
    assert len(s.ran_ok) == 2 and len(s.ran_failed) == 4
    rows = read(tmp_path / "results.csv")
    assert list(rows[0]) == list(COLUMNS)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 4 and all(r["error"] == "RuntimeError: non-finite loss (nan) at "
                                    "epoch 0, step 3" for r in failed)
    assert (tmp_path / "runs" / failed[0]["run_id"] / "error.log").read_text().count("\n") > 2
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:  # identity + provenance + metrics all filled
        for col in SCHEMA:
            if col not in ("fold", "error"):
                assert r[col] != "", col
        assert r["grid"] == "fake" and r["attacks"] == "pgd-5-1"
    # re-run: ok rows skipped, failed rows retried and replaced (one row per run_id)
    monkeypatch.delenv("PRUNEKIT_FAKE_FAIL")
    s = run_grid(GRID, tmp_path, run_fn=fake_run)
    assert len(s.skipped) == 2 and len(s.ran_ok) == 4 and not s.ran_failed
    rows = read(tmp_path / "results.csv")
    assert len(rows) == N_RUNS == len({r["run_id"] for r in rows})
    assert {r["status"] for r in rows} == {"ok"}
    # a third run does nothing
    s = run_grid(GRID, tmp_path, run_fn=fake_run)
    assert not s.ran_ok and len(s.skipped) == N_RUNS


def test_dry_run_trains_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    g = write_grid(tmp_path)
    run_grid(GRID, tmp_path / "out", run_fn=fake_run, shard=(0, 3))
    assert main(["bench", str(g), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{N_RUNS} runs" in out and "finished 2, failed 0, pending 4" in out
    assert len(read(tmp_path / "out" / "results.csv")) == 2


def test_invalid_grid_fails_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = {**GRID, "axes": {**GRID["axes"], "sparsity": [0.5, 1.5]}}
    calls = []
    with pytest.raises(ConfigError, match="sparsity"):
        run_grid(bad, tmp_path, run_fn=lambda *a: calls.append(a) or {})
    assert not calls and not (tmp_path / "results.csv").exists()
    rc = main(["bench", str(write_grid(tmp_path, bad)), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "sparsity" in err and "\n" not in err


def test_run_fn_from_grid_bench_section(tmp_path: Path) -> None:
    sys.path.insert(0, str(TESTS))
    try:
        s = run_grid({**GRID, "bench": {"run_fn": FAKE}}, tmp_path)
    finally:
        sys.path.remove(str(TESTS))
    assert len(s.ran_ok) == N_RUNS


def test_sigkill_mid_grid_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    g = write_grid(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(bench_cmd(g, out), env=env(PRUNEKIT_FAKE_BLOCK="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # the first run finishes, the second blocks
            lines.append(line)
            if "fake run: blocking" in line:
                break
        else:
            pytest.fail("bench ended early:\n" + "".join(lines))
        assert ": ok" in "".join(lines)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    rows = read(out / "results.csv")
    assert len(rows) == 1
    monkeypatch.setattr(sys, "path", [str(TESTS), *sys.path])
    monkeypatch.setenv(RUN_FN_ENV, FAKE)
    assert main(["bench", str(g), "--out", str(out)]) == 0
    rows = read(out / "results.csv")
    ids = [r["run_id"] for r in rows]
    assert len(ids) == N_RUNS == len(set(ids))
    assert all(r["status"] == "ok" for r in rows)
    # the killed run was started again in the same workdir (where checkpoints would be)
    assert sorted(int((out / "runs" / i / "calls.txt").read_text()) for i in ids) == \
        [1] * (N_RUNS - 1) + [2]
    assert "| loss | method |" in capsys.readouterr().out  # the table printed at the end


def test_two_shards_in_parallel_fill_one_csv(tmp_path: Path) -> None:
    g = write_grid(tmp_path)
    out = tmp_path / "out"
    procs = [subprocess.Popen(bench_cmd(g, out, "--shard", f"{i}/2", "--no-table"), env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = [r["run_id"] for r in read(out / "results.csv")]
    assert len(ids) == N_RUNS == len(set(ids))
    assert "3 runs in this shard" in outputs[0] and "3 runs in this shard" in outputs[1]
