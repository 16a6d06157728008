"""Grid expansion, validation, run ids and sharding (prunekit.bench.grid)."""
from __future__ import annotations

from pathlib import Path

import pytest

from prunekit.bench.grid import (Grid, expand, load_grid, parse_shard, resolve_data_root,
                                 run_id_for, shard_runs)
from prunekit.config import ConfigError

GRIDS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "grids").glob("*.yaml"))

BASE = {"data": {"dataset": "synthetic", "train_subset": 64},
        "model": {"name": "vgg-small", "width": 0.25},
        "pretrain": {"epochs": 1}, "prune": {"epochs": 1}, "finetune": {"epochs": 1},
        "eval": {"attacks": ["pgd-5-1"], "n_examples": 16}}


def grid(**kw) -> dict:
    return {"name": "t", "base": BASE, **kw}


def test_product_rules_dedupe_and_order() -> None:
    g = grid(axes={"method": ["dense", "admm"], "loss.name": ["trades", "mart"],
                   "sparsity": [0.5, 0.9]},
             rules=[{"where": {"method": "dense"}, "set": {"sparsity": 0.0}}])
    runs = expand(g)
    # dense x 2 sparsities collapses to one dense run per loss: 2 + 2*2*... = 2 dense + 4 admm
    assert len(runs) == 6
    assert len({r.run_id for r in runs}) == 6
    assert sorted(r.config.sparsity for r in runs if r.config.method == "dense") == [0.0, 0.0]
    # runs sharing a pretraining (same loss here) are adjacent
    hashes = [r.pretrain_hash for r in runs]
    assert hashes == sorted(hashes, key=hashes.index)
    assert [r.index for r in runs] == list(range(6))
    assert runs[0].run_id.startswith("trades-dense-s0-seed0-")
    # deterministic across expansions
    assert [r.run_id for r in expand(g)] == [r.run_id for r in runs]


def test_run_id_is_readable_and_hash_based() -> None:
    runs = expand(grid(axes={"method": ["admm"], "sparsity": [0.9], "seed": [3]}))
    cfg = runs[0].config
    assert runs[0].run_id == f"trades-admm-s0.9-seed3-{cfg.config_hash()[:8]}" == run_id_for(cfg)
    runs = expand(grid(axes={"data.fold": [0, 1]}, base={**BASE, "data": {**BASE["data"],
                                                                            "folds": 5}}))
    assert [r.run_id.split("-")[4] for r in runs] == ["f0", "f1"]


def test_zip_exclude_include_and_variant() -> None:
    g = grid(axes={"method": ["admm"], "sparsity": [0.5, 0.9], "prune.lr": [0.1, 0.01]},
             zip=[["sparsity", "prune.lr"]],
             exclude=[{"sparsity": 0.9}],
             include=[{"method": "dense"}])
    runs = expand(g)
    assert [(r.config.method, r.config.sparsity) for r in runs] == [("admm", 0.5), ("dense", 0.0)]
    assert runs[0].config.prune.lr == 0.1
    assert runs[0].variant == "prune.lr=0.1"


def test_variant_skips_other_methods_sections() -> None:
    g = grid(axes={"method": ["dense", "admm"], "admm.rho": [0.001, 0.01]},
             rules=[{"where": {"method": "dense"}, "set": {"sparsity": 0.0}}])
    runs = expand(g)
    assert [r.config.method for r in runs].count("dense") == 1
    dense = next(r for r in runs if r.config.method == "dense")
    assert dense.variant == ""
    assert {r.variant for r in runs if r.config.method == "admm"} == {"admm.rho=0.001",
                                                                       "admm.rho=0.01"}


@pytest.mark.parametrize("bad, needle", [
    ({"axes": {"method": ["dense", "no-such-pruner"]}}, "no-such-pruner"),
    ({"axes": {"sparsity": [0.5, 1.5]}}, "sparsity"),
    ({"axes": {"loss.nmae": ["trades"]}}, "loss.nmae"),
    ({"axes": {"optimiser": ["sgd"]}}, "optimiser"),
    ({"axes": {"method": []}}, "non-empty"),
    ({"zip": [["sparsity"]], "axes": {"seed": [0]}}, "not an axis"),
    ({"axes": {"seed": [0, 1], "sparsity": [0.5]}, "zip": [["seed", "sparsity"]]}, "equal"),
    ({"axse": {}}, "axse"),
    ({"bench": {"tabel": True}}, "tabel"),
])
def test_invalid_grids_fail_with_one_line(bad: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        expand(grid(**bad))
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


def test_invalid_point_is_named() -> None:
    with pytest.raises(ConfigError, match=r"point \[method=admm, sparsity=1.5\]"):
        expand(grid(axes={"method": ["admm"], "sparsity": [0.5, 1.5]}))


@pytest.mark.parametrize("by", ["run", "pretrain"])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_partition_the_grid(by: str, n: int) -> None:
    runs = expand(grid(axes={"method": ["dense", "admm"], "loss.name": ["trades", "mart"],
                             "sparsity": [0.5, 0.9], "seed": [0, 1]},
                        rules=[{"where": {"method": "dense"}, "set": {"sparsity": 0.0}}]))
    parts = [shard_runs(runs, (i, n), by=by) for i in range(n)]
    ids = [r.run_id for p in parts for r in p]
    assert sorted(ids) == sorted(r.run_id for r in runs)
    assert len(ids) == len(set(ids))
    if by == "pretrain":  # a pretraining group never spans two shards
        owner = {}
        for i, p in enumerate(parts):
            for r in p:
                assert owner.setdefault(r.pretrain_hash, i) == i


def test_parse_shard() -> None:
    assert parse_shard(None) is None
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "a/2", "1", "-1/2", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_resolve_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "repo" / "benchmarks" / "grids").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "x.tar.gz").write_text("")
    gpath = tmp_path / "repo" / "benchmarks" / "grids" / "g.yaml"
    monkeypatch.chdir(tmp_path / "repo")
    # relative to the CWD (the repo root) ...
    assert resolve_data_root("../shared/x.tar.gz", gpath) == str(tmp_path / "shared/x.tar.gz")
    # ... or to an ancestor of the grid file, from anywhere
    monkeypatch.chdir(tmp_path / "shared")
    assert resolve_data_root("shared/x.tar.gz", gpath) == str(tmp_path / "shared/x.tar.gz")
    assert resolve_data_root("missing", gpath) == "missing"
    assert resolve_data_root(None, gpath) is None


@pytest.mark.parametrize("path", GRIDS, ids=[p.stem for p in GRIDS])
def test_every_shipped_grid_validates(path: Path) -> None:
    g = load_grid(path)
    runs = expand(g)
    assert runs and len({r.run_id for r in runs}) == len(runs)


def test_grid_files_exist() -> None:
    names = {p.stem for p in GRIDS}
    assert {"smoke", "demo", "fmnist", "cifar10-cpu", "paper-cifar10", "paper-cifar100",
            "paper-tinyimagenet", "thres", "gamma", "eps", "kfold"} <= names


def test_grid_from_dict_defaults() -> None:
    g = Grid.from_dict({"base": BASE})
    assert g.name == "grid" and len(expand(g)) == 1
