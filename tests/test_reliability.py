"""Issue 20, the in-process faults (docs/reliability.md has the list and which test covers each):
NaN weights, a mismatched examples file, provenance hashes, short and failed writes, an
unwritable results.csv, damaged run-directory files, and every input that must be refused at
validation / ``--dry-run`` instead of failing late or with a traceback.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import prunekit
from prunekit.bench.examples import load_per_example
from prunekit.bench.grid import Grid, expand
from prunekit.bench.runner import pipeline_run, run_grid
from prunekit.bench.store import ResultsStore
from prunekit.checkpoint import load_model, save_model
from prunekit.cli import main
from prunekit.config import RunConfig
from prunekit.errors import ConfigError, UserError
from prunekit.eval import RobustnessEvaluator
from prunekit.eval.checks import NonFiniteModelError
from prunekit.eval.examples import write_examples

from test_bad_inputs import CONFIG, GRID
from test_bench_fakes import fake_run
from test_bench_runner import GRID as FAKE_GRID

ATTACKS = [{"name": "pgd-2-1", "components": ["pgd-2-1"]}]


def _vgg(path: Path | None = None, meta: object = None) -> torch.nn.Module:
    torch.manual_seed(0)
    m = prunekit.MODELS.build("vgg-small", num_classes=10, in_channels=3, width=0.25)
    if path is not None:
        save_model(path, m, meta={"dataset": "synthetic", "eps": 8 / 255}, input_shape=(3, 32, 32))
    return m


# -- silent-wrong ---------------------------------------------------------------------------------
def test_nan_weights_fail_evaluation_loudly(tmp_path: Path) -> None:
    """Fault 4: a NaN in one conv weight gave 10 % under every attack and status ok."""
    m = _vgg().eval()
    conv = next(p for n, p in m.named_parameters() if p.dim() == 4)
    with torch.no_grad():
        conv.view(-1)[0] = float("nan")
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    with pytest.raises(NonFiniteModelError, match=r"non-finite weights \(1 NaN/inf value"):
        RobustnessEvaluator(8 / 255, attacks=("pgd-2-1",)).evaluate(m, (x, y))
    path = tmp_path / "nan.pt"
    save_model(path, m, meta={"dataset": "synthetic", "eps": 8 / 255}, input_shape=(3, 32, 32))
    csv = tmp_path / "r.csv"
    assert main(["eval", str(path), "--n", "8", "--attacks", "pgd-2-1", "--csv", str(csv)]) == 2
    assert not csv.exists()  # no row claiming an accuracy


def test_an_examples_file_of_another_run_is_not_paired(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Fault 5: an .npz copied over another run's gave a paired difference of exactly 0."""
    meta = {"run_id": "run-a", "dataset": "synthetic", "split": "test", "eps": 0.1,
            "norm": "Linf", "seed": 0, "attacks": ATTACKS, "reused": {}}
    write_examples(tmp_path / "examples" / "run-b.npz", index=np.arange(4), names=["clean", "worst"],
                   flags=np.ones((2, 4), bool), meta=meta)
    with caplog.at_level(logging.WARNING):
        assert load_per_example(tmp_path, "examples/run-b.npz", "run-b") is None
    assert "belongs to run run-a, not to run-b" in caplog.text
    assert load_per_example(tmp_path, "examples/run-b.npz", "run-a") is not None


def test_provenance_hashes_name_the_cache_entry_and_the_model(tmp_path: Path) -> None:
    """Fault 6: the CSV's hashes were computed before loss.eps was filled in."""
    cfg = RunConfig.from_dict(CONFIG)
    assert cfg.loss.eps is None  # the default: filled in from the dataset
    cols = pipeline_run(cfg, tmp_path / "w", tmp_path / "cache", "cpu")
    assert (tmp_path / "cache" / "pretrain" / cols["pretrain_hash"] / "done.json").is_file()
    meta = load_model(tmp_path / "w" / "model.pt").prunekit_meta
    assert meta["config_hash"] == cols["config_hash"] != cfg.config_hash()


# -- writes ---------------------------------------------------------------------------------------
def test_a_short_write_is_rolled_back_and_named(tmp_path: Path) -> None:
    """Fault 7: under a file-size limit the CSV append left a 58-byte fragment and said ok."""
    code = f"""
import resource, sys
from prunekit.bench.store import ResultsStore
from prunekit.atomic import WriteError
s = ResultsStore({str(tmp_path / 'results.csv')!r})
s.append({{"run_id": "a", "status": "ok"}})
size = s.path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 20, size + 20))
try:
    s.append({{"run_id": "b" * 200, "status": "ok"}})
except WriteError as exc:
    print("ERR", exc)
print("SIZE", s.path.stat().st_size == size)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout
    assert "SIZE True" in out  # no fragment
    assert f"ERR cannot write {tmp_path / 'results.csv'}: [Errno 27] File too large" in out
    assert "ulimit -f" in out and "MB free" in out


def test_a_failed_checkpoint_write_names_the_path(tmp_path: Path) -> None:
    """torch's 'inline_container.cc: unexpected pos' became a line naming the file."""
    code = f"""
import resource, torch
from prunekit.checkpoint import save
from prunekit.atomic import WriteError
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    save({str(tmp_path / 'ckpt.pt')!r}, {{"w": torch.zeros(100000)}})
except WriteError as exc:
    print("ERR", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout
    assert f"ERR cannot write {tmp_path / 'ckpt.pt'}:" in out and "ulimit -f" in out
    assert not list(tmp_path.glob(".ckpt.pt.*.tmp"))


def test_an_immutable_results_csv_is_refused_before_training(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    store.append({"run_id": "x", "status": "ok"})
    if subprocess.run(["chattr", "+i", str(store.path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(UserError, match="cannot be appended to .*chattr -i"):
            run_grid(FAKE_GRID, tmp_path, run_fn=_never)
    finally:
        subprocess.run(["chattr", "-i", str(store.path)], check=True)


def _never(*_args: object) -> dict:
    raise AssertionError("a run was started")


# -- damaged run-directory files heal ------------------------------------------------------------
def test_damaged_run_files_are_dropped_with_a_log_line(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    runs = expand(FAKE_GRID)
    ck = tmp_path / "runs" / runs[0].run_id / "finetune" / "ckpt.pt"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING):
        s = run_grid(FAKE_GRID, tmp_path, run_fn=fake_run, run_ids=[runs[0].run_id])
    assert s.ran_ok == [runs[0].run_id] and not ck.exists()
    assert f"removing unreadable {ck}" in caplog.text


@pytest.mark.parametrize("content", ["[]", "null", "3"])
def test_a_done_json_that_is_not_an_object_is_rebuilt(tmp_path: Path, content: str) -> None:
    cfg = RunConfig.from_dict(CONFIG)
    cols = pipeline_run(cfg, tmp_path / "w", tmp_path / "cache", "cpu")
    done = tmp_path / "cache" / "pretrain" / cols["pretrain_hash"] / "done.json"
    done.write_text(content)
    pipeline_run(cfg, tmp_path / "w2", tmp_path / "cache", "cpu")  # heals, no traceback
    assert isinstance(json.loads(done.read_text()), dict)


def test_a_model_meta_that_is_a_list_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    _vgg(path)
    blob = torch.load(path, weights_only=True)
    blob["meta"] = "[1, 2]"
    torch.save(blob, path)
    with pytest.raises(UserError, match="its meta is a JSON list, not an object"):
        load_model(path)
    assert main(["eval", str(path), "--n", "8"]) == 2


# -- refused at validation / --dry-run -----------------------------------------------------------
BAD_GRIDS = [
    ({"rules": [{"where": 3, "set": {"seed": 1}}]}, "each rule must be"),
    ({"rules": [{"set": 3}]}, "each rule must be"),
    ({"bench": {"format": "html"}}, "bench format must be one of md, latex, got 'html'"),
    ({"bench": {"table": "yes"}}, "bench table must be true or false"),
    ({"base": {**CONFIG, "eval": {**CONFIG["eval"], "attacks": []}}}, "eval.attacks is empty"),
    ({"axes": {"seed": [2 ** 64]}}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
    ({"base": {**CONFIG, "data": {**CONFIG["data"], "num_classes": 1}}},
     "data.num_classes must be an integer >= 2"),
    ({"base": {**CONFIG, "data": {**CONFIG["data"], "input_shape": [3, 0, 0]}}},
     "data.input_shape must be"),
    ({"base": {**CONFIG, "data": {**CONFIG["data"], "size": 0}}}, "data.size must be"),
]


@pytest.mark.parametrize("change,message", BAD_GRIDS)
def test_bad_grids_are_refused_at_dry_run(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_grid(Grid.from_dict({**GRID, **change}), tmp_path, dry_run=True)


def test_a_device_this_machine_lacks_is_refused_at_dry_run(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    grid = {**GRID, "base": {**CONFIG, "device": "cuda"}}
    with pytest.raises(ConfigError, match="CUDA is not available.*--device cpu"):
        run_grid(grid, tmp_path, dry_run=True)
    run_grid(grid, tmp_path, dry_run=True, device="cpu")  # the override is what counts


def test_train_refuses_bad_dataset_options_in_one_line(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(CONFIG))
    for opt in ("data.num_classes=1", "data.input_shape=[3,0,0]", "data.size=0",
                "seed=99999999999999999999"):
        assert main(["train", "--config", str(cfg), "--workdir", str(tmp_path / "w"),
                     "--set", opt]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("prunekit train: error: "), err
    assert not (tmp_path / "w").exists()
