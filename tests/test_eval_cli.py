"""``prunekit eval``: loads a checkpoint written by ``prunekit.checkpoint.save_model``, prints the
table, appends one CSV row through the results store, one-line errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import prunekit
from prunekit.cli import main

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture()
def checkpoint(tmp_path) -> Path:
    if not (FMNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed")
    from prunekit.checkpoint import save_model

    torch.manual_seed(0)
    model = prunekit.MODELS.build("vgg-small", num_classes=10, in_channels=1, width=0.25)
    path = tmp_path / "model.pt"
    save_model(path, model, meta={"dataset": "fashion_mnist", "eps": 0.1, "method": "dense"},
               input_shape=(1, 28, 28))
    return path


def test_cli_eval_prints_table_and_appends_row(checkpoint, tmp_path, capsys) -> None:
    out_csv = tmp_path / "results.csv"
    args = ["eval", str(checkpoint), "--dataset", "fashion_mnist", "--attacks", "pgd-2-1,pgd-3-1",
            "--n", "16", "--batch-size", "8", "--csv", str(out_csv)]
    assert main(args) == 0
    out = capsys.readouterr().out
    for word in ("clean", "pgd-2-1", "pgd-3-1", "worst", "checks:", "eps=0.1"):
        assert word in out
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok" and row["dataset"] == "fashion_mnist" and row["n_eval"] == "16"
    assert row["method"] == "dense" and float(row["eps"]) == 0.1
    assert 0.0 <= float(row["pgd_acc"]) <= float(row["clean_acc"]) <= 1.0
    assert row["apgd_acc"] in ("", "nan") and row["checks"]
    v = prunekit.__version__   # what this evaluation used, by distribution (issue 24)
    assert json.loads(row["plugins"]) == {
        "model": f"vgg-small=prunekit {v}", "dataset": f"fashion_mnist=prunekit {v}",
        "attacks": [f"pgd-2-1=prunekit {v}", f"pgd-3-1=prunekit {v}"]}
    assert main(args) == 0  # same evaluation again: the store keeps one row per run_id
    assert len(list(csv.DictReader(out_csv.open()))) == 1


def test_cli_eval_bad_attack_is_one_line_error(checkpoint, capsys) -> None:
    assert main(["eval", str(checkpoint), "--attacks", "pgd-fast", "--n", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "valid forms" in err and len(err.splitlines()) == 1


def test_cli_eval_missing_checkpoint(tmp_path, capsys) -> None:
    assert main(["eval", str(tmp_path / "nope.pt"), "--dataset", "fashion_mnist"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_eval_writes_examples_and_refuses_foreign_files(checkpoint, tmp_path,
                                                            capsys) -> None:
    from prunekit.eval.examples import read_examples

    out_csv = tmp_path / "res" / "results.csv"
    npz = tmp_path / "flags" / "run.npz"
    args = ["eval", str(checkpoint), "--attacks", "pgd-2-1", "--n", "12", "--batch-size", "8",
            "--csv", str(out_csv), "--examples", str(npz)]
    assert main(args) == 0
    ex = read_examples(npz)
    (row,) = list(csv.DictReader(out_csv.open()))
    assert row["examples"] == "../flags/run.npz"          # relative to the CSV's folder
    assert ex.meta["run_id"] == row["run_id"] and ex.meta["dataset"] == "fashion_mnist"
    assert ex.index.tolist() == list(range(12)) and ex.names == ("clean", "pgd-2-1", "worst")
    assert float(row["pgd_acc"]) == ex["pgd-2-1"].mean()
    assert main(["eval", str(checkpoint), "--attacks", "pgd-2-1", "--n", "12",
                 "--examples", str(npz)]) == 0                # its own kind of file: rewritten
    capsys.readouterr()
    foreign = tmp_path / "notes.npz"
    foreign.write_text("not an archive")
    assert main(["eval", str(checkpoint), "--attacks", "pgd-2-1", "--n", "4",
                 "--examples", str(foreign)]) == 2
    err = capsys.readouterr().err.strip()
    assert "refusing to overwrite" in err and len(err.splitlines()) == 1
    assert foreign.read_text() == "not an archive"
