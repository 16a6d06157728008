"""Run ids (issue 24): every grid axis that takes several values shows in the id (model and
dataset after the method, others after the seed); a grid varying only loss, method, sparsity,
seed and fold keeps its ids (resume); eval rows are named after the model file."""
from __future__ import annotations

from prunekit.bench.grid import expand, run_id_for
from prunekit.commands.eval import _ckpt_name

BASE = {"data": {"dataset": "synthetic"}, "model": {"name": "vgg-small"}, "loss": {"name": "trades"},
        "sparsity": 0.9}


def test_varying_model_and_hyperparameter_axes_show_in_the_id() -> None:
    runs = expand({"name": "g", "base": BASE, "axes": {
        "method": ["dense", "d2bc"], "model.name": ["vgg-small", "resnet-small"],
        "d2bc.thres": [0.2, 0.5]}, "rules": [{"where": {"method": "dense"}, "set": {"sparsity": 0.0}}]})
    ids = {r.run_id.rsplit("-", 1)[0] for r in runs}
    assert ids == {"trades-dense-vgg-small-s0-seed0", "trades-dense-resnet-small-s0-seed0",
                   "trades-d2bc-vgg-small-s0.9-seed0-thres0.2",
                   "trades-d2bc-vgg-small-s0.9-seed0-thres0.5",
                   "trades-d2bc-resnet-small-s0.9-seed0-thres0.2",
                   "trades-d2bc-resnet-small-s0.9-seed0-thres0.5"}
    assert all(r.config.name == f"g/{r.run_id}" for r in runs)


def test_fixed_axes_keep_the_old_ids() -> None:
    runs = expand({"name": "g", "base": BASE, "axes": {"method": ["d2bc"], "seed": [0, 1],
                                                       "model.name": ["vgg-small"]}})
    assert [r.run_id for r in runs] == [run_id_for(r.config) for r in runs]
    assert runs[0].run_id.startswith("trades-d2bc-s0.9-seed0-")


def test_eval_rows_named_after_the_model_file() -> None:
    assert _ckpt_name("runs/trades-d2bc/model.pt") == "trades-d2bc-model"
    assert _ckpt_name("/x/my vgg.pt") == "my_vgg"
