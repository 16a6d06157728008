"""Safe checkpoints: atomic save, weights_only load, refused pickles, model save/load."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from torch import nn

from prunekit import checkpoint as ckpt
from prunekit.checkpoint import UnsafeCheckpointError


class Booby:
    """Unpickling this would create a file (arbitrary code execution)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_roundtrip_plain_tree(tmp_path):
    obj = {"w": torch.arange(6.0).view(2, 3), "epoch": 3, "hist": [{"loss": 0.5}],
           "t": (1, "a"), "none": None}
    p = tmp_path / "sub" / "c.pt"
    ckpt.save(p, obj)
    back = ckpt.load(p)
    assert back["epoch"] == 3 and back["hist"] == [{"loss": 0.5}] and back["none"] is None
    torch.testing.assert_close(back["w"], obj["w"])
    assert [f for f in os.listdir(p.parent)] == ["c.pt"]  # no temp files left behind


def test_save_is_atomic_on_failure(tmp_path):
    p = tmp_path / "c.pt"
    ckpt.save(p, {"v": 1})
    with pytest.raises(Exception):
        ckpt.save(p, {"bad": lambda: 0})  # lambdas cannot be pickled
    assert ckpt.load(p) == {"v": 1}
    assert os.listdir(tmp_path) == ["c.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("via_torch_save", [True, False])
def test_booby_trapped_pickle_is_refused_and_not_executed(tmp_path, via_torch_save):
    target = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    if via_torch_save:
        torch.save({"model": Booby(str(target))}, p)
    else:
        with open(p, "wb") as fh:
            pickle.dump(Booby(str(target)), fh)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        ckpt.load(p)
    assert not target.exists()


def test_whole_module_pickle_is_refused(tmp_path):
    p = tmp_path / "m.pt"
    torch.save(nn.Linear(2, 2), p)
    with pytest.raises(UnsafeCheckpointError):
        ckpt.load(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ckpt.load(tmp_path / "nope.pt")


def test_save_model_load_model_dense_and_pruned(tmp_path):
    from prunekit import MODELS

    torch.manual_seed(0)
    model = MODELS.build("vgg-small", num_classes=10, in_channels=1, width=0.5).eval()
    x = torch.rand(2, 1, 28, 28)
    p = tmp_path / "model.pt"
    ckpt.save_model(p, model, {"note": "dense"}, input_shape=(1, 28, 28))
    back = ckpt.load_model(p).eval()
    assert back.prunekit_meta == {"note": "dense"}
    assert ckpt.read_model_meta(p) == {"note": "dense"}
    torch.testing.assert_close(back(x), model(x))

    # a weight-masked model comes back with its masks
    from prunekit.pruning import apply_weight_masks

    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    name, conv = list(convs.items())[1]
    mask = torch.rand_like(conv.weight) > 0.5
    apply_weight_masks(model, {name: mask})
    ckpt.save_model(p, model, {}, input_shape=(1, 28, 28))
    back = ckpt.load_model(p).eval()
    torch.testing.assert_close(back(x), model(x))
    w = dict(back.named_modules())[name].weight
    assert bool((w[~mask] == 0).all())


def test_save_model_needs_spec(tmp_path):
    with pytest.raises(ValueError, match="prunekit_spec"):
        ckpt.save_model(tmp_path / "m.pt", nn.Linear(2, 2))


def test_a_file_that_is_no_checkpoint_gives_one_line(tmp_path):
    from prunekit.checkpoint import CheckpointError, load

    bad = tmp_path / "notes.txt"
    bad.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint") as info:
        load(bad)
    assert "\n" not in str(info.value)
