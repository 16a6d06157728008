"""`prunekit bench --launcher`: submitit's LocalExecutor runs the array tasks as real
subprocesses (complete CSV, a rerun submits only unfinished runs), and the SLURM path writes the
sbatch script from the flags and the grid's launcher: section (a fake sbatch on PATH records it).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from prunekit.bench.grid import Grid
from prunekit.bench.launch import LaunchSettings, parse_minutes, plan_tasks, submit
from prunekit.bench.runner import RUN_FN_ENV
from prunekit.cli import main
from prunekit.config import ConfigError

from test_bench_jobs import _consistent
from test_bench_runner import FAKE, GRID, N_RUNS, TESTS, write_grid

pytest.importorskip("submitit")


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The array tasks' subprocesses import the fake run function from tests/."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS),
                                                                    os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv(RUN_FN_ENV, FAKE)
    monkeypatch.syspath_prepend(str(TESTS))


def test_local_executor_fills_the_csv_and_a_rerun_submits_only_unfinished(
        tmp_path: Path, fake_env: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    g = write_grid(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setenv("PRUNEKIT_FAKE_FAIL", "admm")
    # one array task per pretraining group (trades, mart); exit 1: some runs failed
    assert main(["bench", str(g), "--out", str(out), "--launcher", "submitit-local",
                 "--time", "10", "--wait"]) == 1
    text = capsys.readouterr().out
    assert f"submitted 2 array tasks ({N_RUNS} runs)" in text and "| loss | method |" in text
    rows = _consistent(out / "results.csv")
    assert len(rows) == N_RUNS
    failed = {r["run_id"] for r in rows if r["status"] == "failed"}
    assert len(failed) == 4
    monkeypatch.delenv("PRUNEKIT_FAKE_FAIL")
    settings = LaunchSettings.build({"time": 10}, {})
    tasks, jobs = submit(Grid.from_dict(GRID), out, "submitit-local", settings)
    assert sorted(r.run_id for t in tasks for r in t) == sorted(failed)  # only the unfinished
    assert len(jobs) == 2 and all(j.result()["failed"] == [] for j in jobs)
    rows = _consistent(out / "results.csv")
    assert len(rows) == N_RUNS and all(r["status"] == "ok" for r in rows)
    assert main(["bench", str(g), "--out", str(out), "--launcher", "submitit-local"]) == 0
    assert "nothing to submit" in capsys.readouterr().out


def _fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """srun and sbatch stand-ins: sbatch copies the script it is given and prints a job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "sbatch.sh"
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {record}\n"
                                    f"echo 'Submitted batch job 4242'\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_slurm_array_from_flags_and_launcher_section(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    record = _fake_slurm(tmp_path, monkeypatch)
    grid = {**GRID, "launcher": {"partition": "cpu", "time": "01:30:00", "cpus": 4,
                                 "array_parallelism": 2, "extra": {"slurm_account": "proj"}}}
    g = write_grid(tmp_path, grid)
    out = tmp_path / "out"
    assert main(["bench", str(g), "--out", str(out), "--launcher", "slurm", "--partition",
                 "gpu", "--gpus", "1", "--mem", "16", "--shard-by", "run"]) == 0
    assert f"submitted {N_RUNS} array tasks" in capsys.readouterr().out
    script = record.read_text()
    for line in ("#SBATCH --partition=gpu",          # the flag wins over the section
                 f"#SBATCH --array=0-{N_RUNS - 1}%2", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --time=90", "#SBATCH --mem=16GB",
                 "#SBATCH --account=proj", "#SBATCH --job-name=prunekit-fake"):
        assert line in script, (line, script)


def test_launcher_settings_are_checked() -> None:
    assert LaunchSettings.build({"time": "2:00"}, {"time": None}).time == 120
    assert [parse_minutes(v) for v in (90, "90", "01:30:00", "1-00:00:00", "00:00:30")] == \
        [90, 90, 90, 1440, 1]
    for section, match in (({"partitoin": "x"}, "unknown launcher key.*partitoin.*valid"),
                           ({"time": "soon"}, "launcher time must be"),
                           ({"group_by": "seed"}, "group_by must be pretrain or run"),
                           ({"gpus": -1}, "gpus must be an integer >= 0"),
                           ({"mem": "lots"}, "mem must be a number")):
        with pytest.raises(ConfigError, match=match):
            LaunchSettings.build(section, {})
    with pytest.raises(ConfigError, match="must be a mapping"):
        Grid.from_dict({**GRID, "launcher": ["gpu"]})


def test_dry_run_plans_one_task_per_pretraining_group(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    g = write_grid(tmp_path)
    assert main(["bench", str(g), "--out", str(tmp_path / "o"), "--launcher", "slurm",
                 "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "2 array tasks" in text and "task 1: mart-dense" in text
    tasks = plan_tasks(Grid.from_dict(GRID), tmp_path / "o", None, "pretrain")
    assert [len(t) for t in tasks] == [3, 3]
    assert main(["bench", str(g), "--out", str(tmp_path / "o"), "--launcher", "slurm",
                 "--jobs", "2"]) == 2
    assert "drop --shard / --jobs" in capsys.readouterr().err
