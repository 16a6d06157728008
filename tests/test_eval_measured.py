"""``prunekit import apb`` then ``prunekit eval --csv``: a benchmark checkpoint is evaluated by
prunekit's evaluator, and the row carries params, MACs and non-zero params measured on the loaded
model (here: a dense-layout file with zeroed filters, as the benchmark stores structured
pruning)."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from prunekit import MODELS
from prunekit.cli import main
from prunekit.pruning import measure


def test_import_then_eval_row_has_measured_counts(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = MODELS.build("vgg16-bn-apb", width=0.125)
    sd = model.state_dict()
    zeroed = 0
    for k in ("features.3.weight", "features.7.weight"):  # two non-stem convs lose half
        half = sd[k].shape[0] // 2
        sd[k][:half] = 0
        zeroed += sd[k][:half].numel()
    src = tmp_path / "mine_V16_CIFAR10_S_50.pt"
    torch.save({"state_dict": sd}, src)
    out = tmp_path / "imported.pt"
    assert main(["import", "apb", str(src), "--out", str(out), "--dataset", "synthetic",
                 "--width", "0.125"]) == 0
    table = tmp_path / "r.csv"
    assert main(["eval", str(out), "--attacks", "pgd-2-1", "--n", "16", "--eps", "0.03",
                 "--csv", str(table)]) == 0
    row = list(csv.DictReader(table.open()))[0]
    model.load_state_dict(sd)
    ref = measure(model, torch.zeros(1, 3, 32, 32))
    assert int(row["params"]) == ref.params and int(float(row["macs"])) == int(ref.macs)
    assert int(row["nonzero_params"]) == ref.nonzero_params == ref.params - zeroed
    assert float(row["clean_acc"]) >= 0.0 and row["status"] == "ok"
