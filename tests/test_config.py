"""RunConfig validation: unknown fields and bad values fail with one line naming the field."""
from __future__ import annotations

import pytest

from prunekit.config import ConfigError, RunConfig


def test_defaults_validate() -> None:
    cfg = RunConfig.from_dict({})
    assert cfg.method == "dense" and cfg.sparsity == 0.0


def test_method_section_and_stage_overrides() -> None:
    cfg = RunConfig.from_dict({
        "method": "hydra", "sparsity": 0.9,
        "finetune": {"epochs": 3, "lr": 0.1},
        "hydra": {"finetune": {"lr": 0.01}},
        "d2bc": {"thres": 0.5, "prune": {"lr": 1e-4}},
    })
    assert cfg.stage("finetune").lr == 0.01 and cfg.stage("finetune").epochs == 3
    assert cfg.finetune.lr == 0.1  # the base is untouched
    assert cfg.pruner_hparams() == {}
    # sections of other methods do not change this run's hash
    other = RunConfig.from_dict({"method": "hydra", "sparsity": 0.9,
                                 "finetune": {"epochs": 3, "lr": 0.1},
                                 "hydra": {"finetune": {"lr": 0.01}}})
    assert cfg.config_hash() == other.config_hash()
    assert cfg.pretrain_hash() == other.pretrain_hash()


def test_pretrain_hash_ignores_method_and_sparsity() -> None:
    a = RunConfig.from_dict({"method": "d2bc", "sparsity": 0.5})
    b = RunConfig.from_dict({"method": "hydra", "sparsity": 0.9})
    c = RunConfig.from_dict({"method": "hydra", "sparsity": 0.9, "loss": {"name": "mart"}})
    assert a.pretrain_hash() == b.pretrain_hash() != c.pretrain_hash()
    assert a.config_hash() != b.config_hash()


@pytest.mark.parametrize("d, field", [
    ({"bogus": 1}, "'bogus'"),
    ({"data": {"datset": "x"}}, "'data.datset'"),
    ({"sparsity": 1.5}, "sparsity"),
    ({"method": "nope"}, "method"),
    ({"model": {"name": "nope"}}, "model.name"),
    ({"data": {"dataset": "nope"}}, "data.dataset"),
    ({"loss": {"name": "nope"}}, "loss.name"),
    ({"pretrain": {"epochs": "ten"}}, "pretrain.epochs"),
    ({"pretrain": {"schedule": "linear"}}, "pretrain.schedule"),
    ({"data": {"fold": 1}}, "data.fold"),
    ({"eval": {"attacks": ["pgd-x"]}}, "pgd-x"),
    ({"method": "d2bc", "d2bc": {"thres": 2.0}}, "thres"),
    ({"method": "hydra", "hydra": {"prune": {"lrr": 1}}}, "hydra.prune.lrr"),
])
def test_invalid_configs_name_the_field(d: dict, field: str) -> None:
    with pytest.raises((ConfigError, ValueError)) as info:
        RunConfig.from_dict(d)
    msg = str(info.value)
    assert field in msg, msg
    assert "\n" not in msg


def test_yaml_float_strings_are_numbers() -> None:
    cfg = RunConfig.from_dict({"prune": {"lr": "1e-4", "epochs": 1}})
    assert cfg.prune.lr == 1e-4


def test_resolve_fills_eps_defaults() -> None:
    cfg = RunConfig.from_dict({}).resolve(0.1)
    assert cfg.loss.eps == 0.1 and cfg.loss.step_size == pytest.approx(0.025)
    assert cfg.eval.eps == 0.1


# ---- {name, **options} sections (prunekit/sections.py) ------------------------------------------
def test_section_options_reach_the_builders_and_the_hash() -> None:
    from prunekit.sections import build_dataset, build_model
    from prunekit.train.data import build_train_set

    base = {"data": {"dataset": "synthetic", "train_subset": 8}, "model": {"name": "wrn-16-4"}}
    plain = RunConfig.from_dict(base)
    d = {"data": {"dataset": "synthetic", "train_subset": 8, "input_shape": [1, 12, 12],
                  "num_classes": 4, "size": 20},
         "model": {"name": "wrn-16-4", "width": 0.25, "drop_rate": 0.3}}
    cfg = RunConfig.from_dict(d)
    assert cfg.data.options == {"input_shape": [1, 12, 12], "num_classes": 4, "size": 20}
    assert cfg.model.options == {"drop_rate": 0.3}
    assert cfg.to_dict()["model"] == {"name": "wrn-16-4", "width": 0.25, "drop_rate": 0.3}
    again = RunConfig.from_dict(cfg.to_dict())          # flat options round-trip
    assert again.config_hash() == cfg.config_hash() != plain.config_hash()
    assert again.pretrain_hash() == cfg.pretrain_hash() != plain.pretrain_hash()
    nested = RunConfig.from_dict({**d, "model": {"name": "wrn-16-4", "width": 0.25,
                                                 "options": {"drop_rate": 0.3}}})
    assert nested.config_hash() == cfg.config_hash()    # `options:` spelled out: same config
    ds, spec = build_train_set(cfg)
    assert spec.input_shape == (1, 12, 12) and spec.num_classes == 4 and len(ds) == 8
    assert len(build_dataset(cfg.data, "test", False)) == 20
    model = build_model(cfg.model, spec)
    assert model.prunekit_spec["drop_rate"] == 0.3 and model.prunekit_spec["in_channels"] == 1


@pytest.mark.parametrize("d, words", [
    ({"model": {"name": "wrn-16-4", "drop": 0.3}}, ["'model.drop'", "drop_rate"]),
    ({"data": {"dataset": "synthetic", "classes": 3}}, ["'data.classes'", "num_classes"]),
    ({"loss": {"name": "trades", "gamma": 1.0}}, ["'loss.gamma'", "(none)"]),
    ({"model": {"name": "vgg-small", "num_classes": 3}}, ["model.num_classes", "set by prunekit"]),
    ({"data": {"dataset": "synthetic", "split": "test"}}, ["data.split", "set by prunekit"]),
    ({"model": {"name": "torchvision:resnet18", "width": 0.5}}, ["model.width", "no 'width'"]),
    ({"model": {"name": "torchvision:resnet19"}}, ["model.name", "resnet18"]),
    ({"model": {"name": "no_such_pkg.mod:factory"}}, ["model.name", "no_such_pkg"]),
    ({"model": {"name": "prunekit.models.vgg:VGG_CFGS"}}, ["model.name", "not callable"]),
    ({"data": {"dataset": "synthetic", "options": 3}}, ["'data.options'", "mapping"]),
])
def test_bad_section_options_are_one_line_errors(d: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(d)
    msg = str(info.value)
    assert all(w in msg for w in words) and "\n" not in msg, msg


def test_typed_field_a_builder_does_not_take_must_stay_default() -> None:
    from prunekit import LOSSES
    from prunekit.losses.pgd_at import PGDAT
    from prunekit.sections import build_loss

    class NoBeta(PGDAT):
        def __init__(self, eps: float, step_size: float | None = None, steps: int = 10,
                     margin: float = 1.0) -> None:
            super().__init__(eps, step_size, steps)
            self.margin = margin

    LOSSES.add("_nobeta", NoBeta)
    try:
        cfg = RunConfig.from_dict({"loss": {"name": "_nobeta", "margin": 2.0}})
        loss = build_loss(cfg.resolve(0.1).loss)             # beta (default) is not passed
        assert isinstance(loss, NoBeta) and loss.margin == 2.0 and loss.steps == 10
        with pytest.raises(ConfigError, match=r"loss.beta: loss '_nobeta' takes no 'beta'.*margin"):
            RunConfig.from_dict({"loss": {"name": "_nobeta", "beta": 3.0}})
    finally:
        LOSSES.remove("_nobeta")


def test_torchvision_model_by_name_in_a_config() -> None:
    from prunekit.data import DataSpec
    from prunekit.sections import build_model

    cfg = RunConfig.from_dict({"model": {"name": "torchvision:mobilenet_v2", "width_mult": 0.25}})
    spec = DataSpec("x", (1, 28, 28), 7, mean=(0.5,), std=(0.25,))
    model = build_model(cfg.model, spec).eval()
    import torch

    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 7)   # 1-channel stem swapped in
    assert model.prunekit_spec == {"name": "torchvision:mobilenet_v2", "num_classes": 7,
                                   "in_channels": 1, "mean": [0.5], "std": [0.25],
                                   "width_mult": 0.25}
