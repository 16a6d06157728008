"""The three-stage pipeline: stages, records, pretraining cache, exact resume after a crash,
finished stages not re-run, workdir protection, saved final model; the train CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from prunekit import DATASETS, PRUNERS
from prunekit.checkpoint import load, load_model
from prunekit.config import ConfigError, RunConfig
from prunekit.pruning.base import Pruner
from prunekit.train import run_pipeline
import prunekit.train.pipeline as pipeline_mod



class GatePruner(Pruner):
    """Stand-in pruner: one gate per channel of the last BN, trained alone in the prune stage."""

    granularity = "channel"

    def attach(self, model: nn.Module, example_inputs: torch.Tensor) -> None:
        bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)][-1]
        self.gate = nn.Parameter(torch.ones(bn.num_features, device=example_inputs.device))
        self._hook = bn.register_forward_hook(lambda m, i, o: o * self.gate.view(1, -1, 1, 1))

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        return [{"params": [self.gate], "weight_decay": 0.0}]

    def penalty(self) -> torch.Tensor:
        return 1e-3 * self.gate.abs().sum()

    def masks(self) -> dict[str, torch.Tensor]:
        return {}

    def finalize(self, model: nn.Module) -> nn.Module:
        self._hook.remove()
        return model

    def state_dict(self) -> dict[str, Any]:
        return {"gate": self.gate.detach().clone()}

    def load_state_dict(self, state: Any) -> None:
        with torch.no_grad():
            self.gate.copy_(state["gate"])


@pytest.fixture
def gate_pruner() -> Any:
    """Register the test pruner only while a test needs it (the contract tests iterate
    ``PRUNERS.names()`` at collection time and must not see it)."""
    PRUNERS.add("_test_gate", GatePruner)
    yield "_test_gate"
    PRUNERS.remove("_test_gate")


def _small_synthetic(**kw: Any) -> Any:
    """The real synthetic dataset at 1x12x12 (keeps these tests fast)."""
    from prunekit.data.synthetic import synthetic

    return synthetic(input_shape=(1, 12, 12), num_classes=4, size=64, **kw)


if "_test_synth" not in DATASETS:
    DATASETS.add("_test_synth", _small_synthetic)

TINY: dict[str, Any] = {
    "name": "tiny", "seed": 0, "device": "cpu",
    "data": {"dataset": "_test_synth", "train_subset": 48, "batch_size": 16},
    "model": {"name": "vgg-small", "width": 0.25},
    "loss": {"name": "trades", "steps": 1},
    "pretrain": {"epochs": 1, "lr": 0.05},
    "method": "dense", "sparsity": 0.0,
    "prune": {"epochs": 0, "lr": 0.01},
    "finetune": {"epochs": 2, "lr": 0.01},
    "eval": {"attacks": ["pgd-2-1"], "n_examples": 16},
}


def _cfg(**over: Any) -> RunConfig:
    d = json.loads(json.dumps(TINY))
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k].update(v)
        else:
            d[k] = v
    return RunConfig.from_dict(d)


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pipeline_stages_cache_and_saved_model(tmp_path, gate_pruner):
    cache = tmp_path / "cache"
    a = run_pipeline(_cfg(), tmp_path / "a", cache_dir=cache, progress=False)
    assert set(a.records) == {"pretrain", "prune", "finetune"}
    assert a.records["pretrain"].epochs == 1 and not a.records["pretrain"].cached
    assert a.records["prune"].skipped and a.records["finetune"].epochs == 2
    assert a.train_seconds == pytest.approx(sum(r.seconds for r in a.records.values()))
    assert not a.model.training and a.example_inputs.shape == (1, 1, 12, 12)
    assert {"loss", "clean_acc", "adv_acc"} <= set(a.records["finetune"].last)
    assert not _same(a.model, a.dense_model)  # fine-tuning changed the weights
    x = torch.rand(4, 1, 12, 12)
    saved = load_model(tmp_path / "a" / "model.pt").eval()
    torch.testing.assert_close(saved(x), a.model(x))
    assert saved.prunekit_meta["dataset"] == "_test_synth"
    assert len((tmp_path / "a" / "finetune" / "log.jsonl").read_text().splitlines()) == 2

    # another method sharing the pretraining reuses the cache entry
    b = run_pipeline(_cfg(method="_test_gate", sparsity=0.5, prune={"epochs": 1},
                          finetune={"epochs": 1}), tmp_path / "b", cache_dir=cache,
                     progress=False)
    assert b.records["pretrain"].cached
    assert b.records["pretrain"].seconds == a.records["pretrain"].seconds
    assert _same(a.dense_model, b.dense_model)
    assert b.records["prune"].epochs == 1 and b.records["prune"].last["penalty"] > 0
    entries = list((cache / "pretrain").iterdir())
    assert len(entries) == 1 and (entries[0] / "done.json").exists()
    # measured compute: a cached pretraining counts with what it cost (stored in done.json)
    pre = a.records["pretrain"]
    assert pre.passes and pre.passes > 0 and pre.cpu_s and pre.cpu_s > 0
    assert b.records["pretrain"].passes == pre.passes
    assert b.compute["train_passes"] == pre.passes + b.records["prune"].passes + \
        b.records["finetune"].passes
    assert json.loads(b.compute["train_epochs"]) == {"pretrain": 1, "prune": 1, "finetune": 1}
    # an entry written before the counts existed: unknown, never 0
    done = json.loads((entries[0] / "done.json").read_text())
    done.pop("passes"), done.pop("cpu_s")
    (entries[0] / "done.json").write_text(json.dumps(done))
    c = run_pipeline(_cfg(), tmp_path / "c", cache_dir=cache, progress=False)
    assert c.records["pretrain"].cached and c.records["pretrain"].passes is None
    assert c.compute["train_passes"] is None and c.compute["train_cpu_s"] is None


class _Crash(Exception):
    pass


def test_pipeline_resume_after_crash_is_exact_and_finished_stages_not_rerun(tmp_path, gate_pruner,
                                                                            monkeypatch):
    cfg = _cfg(method="_test_gate", sparsity=0.5, prune={"epochs": 1}, finetune={"epochs": 2})
    ref = run_pipeline(cfg, tmp_path / "ref", progress=False)

    real_fit = pipeline_mod.fit
    calls: dict[str, int] = {}

    def crashing_fit(model, loss, *a: Any, stage: str = "", **kw: Any):
        def wrapped(m, x, y):
            calls[stage] = calls.get(stage, 0) + 1
            if stage == "finetune" and calls[stage] > 4:  # 3 steps/epoch: in finetune epoch 1
                raise _Crash()
            return loss(m, x, y)
        return real_fit(model, wrapped, *a, stage=stage, **kw)

    monkeypatch.setattr(pipeline_mod, "fit", crashing_fit)
    with pytest.raises(_Crash):
        run_pipeline(cfg, tmp_path / "cut", progress=False)
    assert load(tmp_path / "cut" / "finetune" / "ckpt.pt")["epoch"] == 1

    def counting_fit(model, loss, *a: Any, stage: str = "", **kw: Any):
        def wrapped(m, x, y):
            calls[stage] = calls.get(stage, 0) + 1
            return loss(m, x, y)
        return real_fit(model, wrapped, *a, stage=stage, **kw)

    monkeypatch.setattr(pipeline_mod, "fit", counting_fit)
    calls.clear()
    res = run_pipeline(cfg, tmp_path / "cut", progress=False)
    assert calls == {"finetune": 3}  # only the unfinished fine-tuning epoch ran
    assert _same(res.model, ref.model)
    assert res.records["finetune"].last["loss"] == ref.records["finetune"].last["loss"]
    calls.clear()
    again = run_pipeline(cfg, tmp_path / "cut", progress=False)  # everything finished
    assert calls == {} and _same(again.model, ref.model)


def test_workdir_with_other_config_is_refused(tmp_path):
    run_pipeline(_cfg(finetune={"epochs": 0}), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="different training config"):
        run_pipeline(_cfg(finetune={"epochs": 0}, seed=1), tmp_path, progress=False)


def test_cli_set_override_and_bad_field(tmp_path, capsys):
    import yaml

    from prunekit.cli import main

    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump(TINY))
    rc = main(["train", "--config", str(cfgfile), "--workdir", str(tmp_path / "w"),
               "--set", "finetune.epochs=0", "--set", "bogus=1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bogus" in err and len(err.strip().splitlines()) == 1
    rc = main(["train", "--config", str(cfgfile), "--set", "pretrain.epochs=-1"])
    assert rc == 2 and "pretrain.epochs" in capsys.readouterr().err
    rc = main(["train", "--config", str(cfgfile), "--workdir", str(tmp_path / "w"),
               "--set", "finetune.epochs=0", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "finetune  skipped" in out and "pgd-2-1" in out
    assert json.loads((tmp_path / "w" / "eval.json").read_text())["n_examples"] == 16


# ---------------------------------------------------------------- SIGKILL + resume (slow) ------
def _cli(cfgfile: Path, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "prunekit", "train", "--config", str(cfgfile), "--workdir",
            str(workdir), "--no-progress"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_gives_same_final_metrics(tmp_path):
    import yaml

    cfg = dict(TINY, model={"name": "vgg-small", "width": 0.25}, pretrain={"epochs": 2, "lr": 0.05}, finetune={"epochs": 3, "lr": 0.01},
               data={"dataset": "synthetic", "train_subset": 160, "batch_size": 16})
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PRUNEKIT_PROGRESS="0", OMP_NUM_THREADS="1")
    ref = subprocess.run(_cli(cfgfile, tmp_path / "ref"), env=env, capture_output=True,
                         text=True, timeout=900)
    assert ref.returncode == 0, ref.stderr

    work = tmp_path / "cut"
    proc = subprocess.Popen(_cli(cfgfile, work), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = work / "finetune" / "ckpt.pt"
    deadline = time.monotonic() + 900
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a subprocess, not timing a test
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of fine-tuning epoch 2 (of 3)
    proc.wait()
    assert load(ckpt)["epoch"] < 3
    again = subprocess.run(_cli(cfgfile, work), env=env, capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr
    r1 = json.loads((tmp_path / "ref" / "eval.json").read_text())
    r2 = json.loads((work / "eval.json").read_text())
    assert r1["clean_acc"] == r2["clean_acc"] and r1["robust_acc"] == r2["robust_acc"]
    a = load_model(tmp_path / "ref" / "model.pt")
    b = load_model(work / "model.pt")
    assert _same(a, b)
    hist = [json.loads(s) for s in (work / "finetune" / "log.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [0, 1, 2]


def test_config_doc_lists_every_field():
    import dataclasses
    import typing

    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()

    def names(cls: type, prefix: str = "") -> list[str]:
        out = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "methods":
                continue
            if dataclasses.is_dataclass(hints[f.name]):
                out += names(hints[f.name], prefix + f.name + ".")
            else:
                out.append(prefix + f.name)
        return out

    missing = [n for n in names(RunConfig) if f"`{n}`" not in doc]
    assert not missing, f"docs/config.md misses {missing}"


def test_pipeline_with_real_channel_pruner_saves_a_rebuildable_model(tmp_path):
    if "d2bc" not in PRUNERS:
        pytest.skip("d2bc pruner not available")
    res = run_pipeline(_cfg(method="d2bc", sparsity=0.5, prune={"epochs": 1},
                            finetune={"epochs": 1}), tmp_path, progress=False)
    n_dense = sum(p.numel() for p in res.dense_model.parameters())
    assert sum(p.numel() for p in res.model.parameters()) < n_dense  # physically smaller
    saved = load_model(tmp_path / "model.pt").eval()
    x = torch.rand(4, 1, 12, 12)
    torch.testing.assert_close(saved(x), res.model(x))
