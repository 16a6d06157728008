"""`prunekit bench --jobs N` (local workers, one CSV, Ctrl-C), `--set` and `--only`.

Fast: the fake run function of tests/test_bench_fakes.py stands in for training.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
from pathlib import Path

import pytest

from prunekit.bench.grid import Grid, expand
from prunekit.bench.runner import RUN_FN_ENV, run_grid
from prunekit.bench.store import COLUMNS
from prunekit.cli import main
from prunekit.config import ConfigError
from prunekit.overrides import filter_runs, override_grid, parse_only

from test_bench_fakes import fake_run
from test_bench_runner import FAKE, GRID, N_RUNS, TESTS, bench_cmd, env, read, write_grid


def _consistent(path: Path) -> list[dict]:
    """Every line a complete row of the schema, one row per run_id."""
    with open(path, newline="") as fh:
        lines = list(csv.reader(fh))
    assert tuple(lines[0]) == COLUMNS
    assert all(len(line) == len(COLUMNS) for line in lines[1:])
    rows = read(path)
    ids = [r["run_id"] for r in rows]
    assert len(ids) == len(set(ids))
    return rows


def test_jobs_fill_one_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))  # the spawned workers get the parent's sys.path
    lines: list[str] = []
    s = run_grid(GRID, tmp_path, run_fn=FAKE, jobs=2, progress=lines.append)
    rows = _consistent(tmp_path / "results.csv")
    assert len(rows) == N_RUNS and all(r["status"] == "ok" for r in rows)
    assert sorted(s.ran_ok) == sorted(r["run_id"] for r in rows)
    assert "on 2 local worker(s)" in lines[0]  # (both at work: the Ctrl-C tests below)
    # one [k/N] count across both workers: 1..N, each once
    starts = sorted(int(ln.split("[")[2].split("/")[0]) for ln in lines if ln.endswith(": start"))
    assert starts == list(range(1, N_RUNS + 1))
    # every run ran exactly once
    assert all((tmp_path / "runs" / r["run_id"] / "calls.txt").read_text() == "1" for r in rows)


def test_jobs_rerun_skips_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    g = write_grid(tmp_path)
    run_grid(GRID, tmp_path / "out", run_fn=fake_run, only=parse_only(["method=dense"]))
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(RUN_FN_ENV, FAKE)
    assert main(["bench", str(g), "--out", str(tmp_path / "out"), "--jobs", "2",
                 "--only", "method=dense", "--no-table"]) == 0
    assert "2 finished, 0 to run on 0 local worker(s)" in capsys.readouterr().out


# "parent" (SIGINT to the parent only) is the heavier variant: slow (the default suite keeps
# "group", the terminal's Ctrl-C); both run with -m slow
@pytest.mark.parametrize("target", ["group", pytest.param("parent", marks=pytest.mark.slow)])
def test_ctrl_c_stops_cleanly_with_a_consistent_csv(tmp_path: Path, target: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SIGINT: to the whole process group (a terminal's Ctrl-C) or to the parent only
    (which forwards it). Waits on the workers' own output, never on time."""
    g = write_grid(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(bench_cmd(g, out, "--jobs", "2", "--no-table"),
                            env=env(PRUNEKIT_FAKE_BLOCK="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        blocking = 0
        for line in proc.stdout:  # each worker finishes one run, then blocks in its second
            blocking += "fake run: blocking" in line
            if blocking == 2:
                break
        assert blocking == 2, "bench ended before both workers blocked"
        if target == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 130, stderr
    lines = [s for s in stderr.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("prunekit bench: interrupted: 2 runs "
                                                   "finished in this session, 4 left"), stderr
    rows = _consistent(out / "results.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(RUN_FN_ENV, FAKE)
    assert main(["bench", str(g), "--out", str(out), "--no-table"]) == 0
    assert len(_consistent(out / "results.csv")) == N_RUNS


def test_ctrl_c_without_jobs_gives_the_same_one_line(tmp_path: Path) -> None:
    g = write_grid(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(bench_cmd(g, out, "--no-table"), env=env(PRUNEKIT_FAKE_BLOCK="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if "fake run: blocking" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 130
    assert stderr.strip().startswith("prunekit bench: interrupted: 1 runs finished")
    assert len(_consistent(out / "results.csv")) == 1


# -- --set / --only ------------------------------------------------------------------------------
def test_set_overrides_the_base_and_is_validated(tmp_path: Path) -> None:
    grid = Grid.from_dict(GRID)
    small = override_grid(grid, ["pretrain.epochs=1", "admm.rho=0.01", "eval.n_examples=8"])
    runs = expand(small)
    assert {r.config.pretrain.epochs for r in runs} == {1}
    assert {r.config.eval.n_examples for r in runs} == {8}
    assert {r.run_id for r in runs}.isdisjoint({r.run_id for r in expand(grid)})
    admm = [r for r in runs if r.config.method == "admm"]
    assert admm and all(r.config.pruner_hparams()["rho"] == 0.01 for r in admm)
    assert grid.base.get("pretrain") is None  # the original grid is untouched
    with pytest.raises(ConfigError, match="'sparsity' is an axis"):
        override_grid(grid, ["sparsity=0.3"])
    with pytest.raises(ConfigError, match="unknown config field 'pretrain.epoch'"):
        expand(override_grid(grid, ["pretrain.epoch=1"]))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        override_grid(grid, ["pretrain.epochs"])


def test_only_selects_a_subset_renumbered(tmp_path: Path) -> None:
    runs = expand(Grid.from_dict(GRID))
    admm = filter_runs(runs, parse_only(["method=admm"]))
    assert {r.config.method for r in admm} == {"admm"} and len(admm) == 4
    assert [r.index for r in admm] == [0, 1, 2, 3]
    both = filter_runs(runs, parse_only(["method=admm", "sparsity=0.9", "loss.name=mart"]))
    assert [(r.config.method, r.config.sparsity, r.config.loss.name) for r in both] == \
        [("admm", 0.9, "mart")]
    two = filter_runs(runs, parse_only(["loss.name=trades", "loss.name=mart", "method=dense"]))
    assert len(two) == 2
    with pytest.raises(ConfigError, match="matches none of the 6 runs .*method in this grid: "
                                          "admm, dense"):
        filter_runs(runs, parse_only(["method=hydra"]))
    with pytest.raises(ConfigError, match="no such config field"):
        filter_runs(runs, parse_only(["methd=admm"]))
    s = run_grid(GRID, tmp_path, run_fn=fake_run, only=parse_only(["method=dense"]))
    assert len(s.ran_ok) == 2 and len(read(tmp_path / "results.csv")) == 2


def test_cli_set_and_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture) -> None:
    g = write_grid(tmp_path)
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(RUN_FN_ENV, FAKE)
    out = tmp_path / "out"
    assert main(["bench", str(g), "--out", str(out), "--set", "pretrain.epochs=1",
                 "--only", "method=admm", "--only", "sparsity=0.5", "--no-table"]) == 0
    rows = read(out / "results.csv")
    assert [(r["method"], r["target_sparsity"]) for r in rows] == [("admm", "0.5")] * 2
    assert main(["bench", str(g), "--out", str(out), "--set", "sparsity=0.1"]) == 2
    assert "is an axis" in capsys.readouterr().err
