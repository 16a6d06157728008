"""Issue 20, the process faults, as real processes (docs/reliability.md): a killed ``--jobs``
worker's run is reported lost and re-claimable; the parent's death (SIGKILL, SIGTERM) ends its
workers; two serial benches on one ``--out`` never run the same run.

Fast: the fake run function of tests/test_bench_fakes.py stands in for training. Waits are on
the processes' own output and on their exit (pidfd), never on time.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

from prunekit.bench.runner import run_grid

from test_bench_fakes import fake_run
from test_bench_jobs import _consistent
from test_bench_runner import GRID, N_RUNS, bench_cmd, env, write_grid

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfd")


def _wait_gone(pid: int, timeout: float = 60.0) -> bool:
    """Block until process ``pid`` (not our child) has ended; False if still alive at
    ``timeout`` (a safety net: the event, not the time, ends the wait)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


@pytest.mark.parametrize("sig", ["KILL", "TERM"])
def test_a_killed_worker_is_reported_lost_and_rerun(tmp_path: Path, sig: str) -> None:
    """Fault 1: SIGKILL (the OOM killer) or SIGTERM of one worker of --jobs 2."""
    g = write_grid(tmp_path)
    out, marker = tmp_path / "out", tmp_path / "die"
    proc = subprocess.run(bench_cmd(g, out, "--jobs", "2", "--no-table"),
                          env=env(PRUNEKIT_FAKE_DIE=str(marker), PRUNEKIT_FAKE_DIE_SIG=sig),
                          capture_output=True, text=True, timeout=300)
    lost = marker.read_text()
    assert proc.returncode == 1, proc.stderr
    done = [ln for ln in proc.stdout.splitlines() if ln.startswith("done:")]
    assert len(done) == 1, proc.stdout
    assert done[0].startswith(f"done: {N_RUNS - 1} ok, 0 failed, 0 already finished, 1 LOST "
                              f"({lost}: worker prunekit-job-"), done[0]
    assert ("SIGKILL" if sig == "KILL" else "Ctrl-C or SIGTERM") in done[0]
    assert "Traceback" not in proc.stderr
    rows = _consistent(out / "results.csv")
    assert len(rows) == N_RUNS - 1 and lost not in {r["run_id"] for r in rows}
    # re-claimable: the next invocation runs exactly the lost run
    again = subprocess.run(bench_cmd(g, out, "--jobs", "2", "--no-table"), env=env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"done: 1 ok, 0 failed, {N_RUNS - 1} already finished" in again.stdout
    assert len(_consistent(out / "results.csv")) == N_RUNS


# SIGTERM (the cluster's stop) is slow; the default suite keeps SIGKILL, the hard case
@pytest.mark.parametrize("sig", [signal.SIGKILL,
                                 pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_the_parents_death_ends_its_workers(tmp_path: Path, sig: int) -> None:
    """Fault 2: SIGKILL or SIGTERM of the --jobs parent leaves no orphan appending rows."""
    g = write_grid(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen(bench_cmd(g, out, "--jobs", "2", "--no-table"),
                            env=env(PRUNEKIT_FAKE_BLOCK="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    pids: list[int] = []
    try:
        for line in proc.stdout:  # each worker finishes one run, then blocks in its second
            if "fake run: blocking pid" in line:
                pids.append(int(line.rsplit(" ", 1)[1]))
                if len(pids) == 2:
                    break
        assert len(pids) == 2, "bench ended before both workers blocked"
        os.kill(proc.pid, sig)
        proc.communicate(timeout=120)
        assert all(_wait_gone(p) for p in pids), "a worker outlived its parent"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        for p in pids:  # never leave a stray process behind, even when the test fails
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == (130 if sig == signal.SIGTERM else -signal.SIGKILL)
    rows = _consistent(out / "results.csv")
    assert len(rows) == 2  # the two finished runs; the interrupted ones wrote nothing


def test_two_serial_benches_take_claims(tmp_path: Path) -> None:
    """Fault 3: a second serial bench on the same --out leaves the run the first one is running
    to it, and its summary counts only the rows it wrote."""
    g = write_grid(tmp_path)
    out = tmp_path / "out"
    with subprocess.Popen(bench_cmd(g, out, "--no-table"), env=env(PRUNEKIT_FAKE_BLOCK="1"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as first:
        try:
            next(ln for ln in first.stdout if "fake run: blocking" in ln)  # holds run 2's claim
            s = run_grid(GRID, out, run_fn=fake_run)
            first.send_signal(signal.SIGINT)
            first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
    assert len(s.busy) == 1 and len(s.skipped) == 1
    assert len(s.ran_ok) == N_RUNS - 2
    assert s.line().startswith(f"done: {N_RUNS - 2} ok, 0 failed, 1 already finished, 1 run "
                               f"by another process ({s.busy[0]})")
    rows = _consistent(out / "results.csv")
    assert len(rows) == N_RUNS - 1
    # no run was trained twice, and the busy one not by the second bench
    calls = {r.name: (r / "calls.txt").read_text() for r in (out / "runs").iterdir()}
    assert set(calls.values()) == {"1"}
