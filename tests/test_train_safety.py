"""Issue 11, training side: a diverged stage is a failed run naming the stage and its settings
(never checkpointed, never cached), and a broken pretraining cache entry heals itself."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from prunekit.bench.runner import run_grid
from prunekit.cli import main
from prunekit.config import RunConfig
from prunekit.train import NonFiniteWeightsError, run_pipeline
from prunekit.train.loop import check_finite_state

from test_bad_inputs import CONFIG as BASE  # one tiny synthetic run config for both files

def cfg(**pretrain) -> RunConfig:
    d = json.loads(json.dumps(BASE))
    d["pretrain"].update(pretrain)
    return RunConfig.from_dict(d)


def test_one_huge_step_is_a_diverged_pretraining_not_a_model(tmp_path) -> None:
    """lr 1e6, one step: every loss computed was finite and so are the weights (~1e5), but
    the BN statistics do not fit them: eval-mode outputs are NaN. The stage fails, names itself
    and its settings, and leaves no checkpoint or cache entry behind."""
    with pytest.raises(NonFiniteWeightsError) as info:
        run_pipeline(cfg(lr=1e6), tmp_path / "w", cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert msg.startswith("pretrain: after epoch 1/1:") and "lr 1e+06" in msg
    assert "pretrain.lr" in msg and "\n" not in msg
    entry = next((tmp_path / "cache" / "pretrain").iterdir())
    assert not (entry / "ckpt.pt").exists() and not (entry / "done.json").exists()


def test_non_finite_weights_and_bn_buffers_are_named() -> None:
    import prunekit

    model = prunekit.MODELS.build("vgg-small", num_classes=4, in_channels=1, width=0.25)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    check_finite_state(model, opt, "prune: after epoch 2/3")      # finite: no error
    bn = next(n for n, b in model.named_buffers() if n.endswith("running_var"))
    dict(model.named_buffers())[bn].fill_(float("inf"))
    with pytest.raises(NonFiniteWeightsError, match=rf"prune: after epoch 2/3: 1 of \d+ "
                                                    rf"weight/buffer tensors .*first: {bn}.*"
                                                    rf"SGD lr 0.1 \(momentum 0.9"):
        check_finite_state(model, opt, "prune: after epoch 2/3")


def test_grid_point_that_diverges_is_a_failed_row(tmp_path) -> None:
    grid = {"name": "div", "base": BASE, "axes": {"pretrain.lr": [1e6]}}
    s = run_grid(grid, tmp_path)
    assert len(s.ran_failed) == 1 and not s.ran_ok
    import csv

    (row,) = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert row["status"] == "failed"
    assert row["error"].startswith("NonFiniteWeightsError: pretrain: after epoch 1/1")
    assert "lr 1e+06" in row["error"]


def test_train_cli_diverged_run_exits_1_with_one_line(tmp_path, capsys) -> None:
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(BASE))
    rc = main(["train", "--config", str(p), "--workdir", str(tmp_path / "w"), "--no-eval",
               "--no-progress", "--set", "pretrain.lr=1e6"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert err[0].startswith("prunekit train: failed: pretrain: after epoch 1/1")


def _weights(res) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in res.dense_model.state_dict().items()}


def test_broken_pretraining_cache_is_verified_and_rebuilt(tmp_path, caplog) -> None:
    c, cache = cfg(), tmp_path / "cache"
    ref = _weights(run_pipeline(c, tmp_path / "w0", cache_dir=cache))
    entry = next((cache / "pretrain").iterdir())
    assert "model_sha256" in json.loads((entry / "done.json").read_text())

    def rerun(k: int, reason: str) -> None:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="prunekit.train.pipeline"):
            res = run_pipeline(c, tmp_path / f"w{k}", cache_dir=cache)
        assert any(reason in r.getMessage() and "rebuilding it" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert not res.records["pretrain"].cached
        for name, t in _weights(res).items():
            torch.testing.assert_close(t, ref[name], rtol=0, atol=0)
        # healed: the next run uses the cache again, silently
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="prunekit.train.pipeline"):
            again = run_pipeline(c, tmp_path / f"w{k}b", cache_dir=cache)
        assert again.records["pretrain"].cached and not caplog.records

    (entry / "model.pt").unlink()
    rerun(1, "model.pt is missing")
    (entry / "model.pt").write_bytes(b"garbage")
    rerun(2, "does not match the SHA-256")
    info = json.loads((entry / "done.json").read_text())     # an entry from before the hash
    info.pop("model_sha256")
    (entry / "done.json").write_text(json.dumps(info))
    (entry / "model.pt").write_bytes((entry / "model.pt").read_bytes()[:1000])
    (entry / "ckpt.pt").write_bytes(b"not a checkpoint either")   # retrained from scratch
    rerun(3, "not a readable torch checkpoint")
