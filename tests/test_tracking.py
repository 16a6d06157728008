"""Experiment tracking: TensorBoard event files read back with tensorboard's EventAccumulator,
Weights & Biases through a fake module (the documented calls) and, where wandb is installed, a
real offline run; off by default and outside every hash."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from prunekit.bench.runner import EVAL_RESULT, pipeline_run
from prunekit.cli import main
from prunekit.config import ConfigError, RunConfig
from prunekit.train import run_pipeline
from prunekit.train.tracking import NullTracker, open_tracker

from test_pipeline import TINY as PIPELINE_TINY

#: test_pipeline's tiny run on the registered synthetic data, with 2 pretraining epochs
TINY: dict[str, Any] = {**PIPELINE_TINY,
                        "data": {"dataset": "synthetic", "train_subset": 32, "batch_size": 16},
                        "pretrain": {"epochs": 2, "lr": 0.05}, "finetune": {"epochs": 1}}


def _cfg(**track: Any) -> RunConfig:
    return RunConfig.from_dict({**TINY, "track": track})


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_off_by_default_and_outside_the_hashes(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict(TINY)
    assert not cfg.track.tensorboard and not cfg.track.wandb
    assert isinstance(open_tracker(cfg, tmp_path), NullTracker)
    on = _cfg(tensorboard=True, wandb=True)
    assert on.config_hash() == cfg.config_hash() and on.pretrain_hash() == cfg.pretrain_hash()
    assert isinstance(open_tracker(on, tmp_path, is_main=False), NullTracker)
    with pytest.raises(ConfigError, match="track.wandb_mode must be offline or online"):
        _cfg(wandb_mode="cloud")


def test_tensorboard_events_read_back_per_epoch_and_final(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    cfg = _cfg(tensorboard=True)
    row = pipeline_run(cfg, tmp_path / "w", tmp_path / "cache")
    tb = _scalars(tmp_path / "w" / "tracking" / "tensorboard")
    pre = _jsonl(next((tmp_path / "cache" / "pretrain").glob("*/log.jsonl")))
    fine = _jsonl(tmp_path / "w" / "finetune" / "log.jsonl")
    for stage, log in (("pretrain", pre), ("finetune", fine)):
        for stat in ("loss", "clean_acc", "adv_acc", "lr", "seconds"):
            got = tb[f"{stage}/{stat}"]
            assert [s for s, _ in got] == [r["epoch"] for r in log]
            assert [v for _, v in got] == pytest.approx([r[stat] for r in log], rel=1e-6)
    result = row[EVAL_RESULT]
    assert tb["final/clean_acc"] == [(0, pytest.approx(result.clean_acc))]
    assert tb["final/params"][0][1] == row["params"]


def test_train_cli_set_enables_tensorboard(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(TINY))
    assert main(["train", "--config", str(cfg_file), "--workdir", str(tmp_path / "w"),
                 "--no-progress", "--set", "track.tensorboard=true",
                 "--set", f"track.dir={tmp_path / 'tb'}"]) == 0
    tb = _scalars(tmp_path / "tb" / "tensorboard")
    ev = json.loads((tmp_path / "w" / "eval.json").read_text())
    assert [s for s, _ in tb["pretrain/loss"]] == [0, 1] and len(tb["finetune/loss"]) == 1
    assert tb["final/clean_acc"][0][1] == pytest.approx(ev["clean_acc"])


class FakeWandb(types.ModuleType):
    """Records the calls of wandb's documented API (init, Run.log, Run.summary, Run.finish)."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits: list[dict[str, Any]] = []
        self.runs: list[Any] = []

    def init(self, **kw: Any) -> Any:
        self.inits.append(kw)
        run = types.SimpleNamespace(logged=[], summary={}, finished=False)
        run.log = lambda data, step=None: run.logged.append((step, dict(data)))
        run.finish = lambda: setattr(run, "finished", True)
        self.runs.append(run)
        return run


def test_wandb_offline_through_the_documented_api(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    res = run_pipeline(_cfg(wandb=True, wandb_project="proj"), tmp_path / "w", progress=False)
    (init,) = fake.inits
    assert init["mode"] == "offline" and init["project"] == "proj" and init["name"] == "tiny"
    assert init["dir"] == str(tmp_path / "w" / "tracking") and init["config"]["seed"] == 0
    (run,) = fake.runs
    steps = [s for s, _ in run.logged]
    assert steps == sorted(steps) == list(range(len(steps)))  # W&B needs increasing steps
    pre = [d for _, d in run.logged if "pretrain/loss" in d]
    assert [d["pretrain/epoch"] for d in pre] == [0, 1]
    fine = [d for _, d in run.logged if "finetune/loss" in d]
    assert fine[0]["finetune/loss"] == pytest.approx(res.records["finetune"].last["loss"])
    assert run.finished  # run_pipeline opened the tracker, so it closed it


def test_missing_package_is_a_one_line_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"^track.tensorboard needs the tensorboard package"):
        open_tracker(_cfg(tensorboard=True), tmp_path)
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"^track.wandb needs the wandb package"):
        open_tracker(_cfg(wandb=True), tmp_path)


def test_real_wandb_offline_run_writes_its_files(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    with open_tracker(_cfg(wandb=True), tmp_path) as tracker:
        tracker.log_epoch("pretrain", 0, {"loss": 1.5, "clean_acc": 0.25})
        tracker.log_final({"clean_acc": 0.5, "status": "ok"})
    import wandb

    wandb.teardown()  # the service writes the run file asynchronously: wait for it
    (run_file,) = (tmp_path / "tracking" / "wandb").glob("offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    assert b"pretrain/loss" in data and b"final/clean_acc" in data
