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
