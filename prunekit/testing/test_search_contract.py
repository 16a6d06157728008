"""Contract tests run on every registered searcher (built-ins and ``prunekit.searchers``
entry-point plug-ins): declared metadata, determinism per seed, the budget, the JSON genotype
rebuilding the same network, and a killed search resuming to the same genotype.

A searcher makes its search take a second or two here with ``contract_hparams`` (which include
the budget), like the pruners' contract hyperparameters."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import prunekit
from prunekit import SEARCHERS
from prunekit.search import Searcher

NAMES = SEARCHERS.names()


class Killed(RuntimeError):
    pass


def _data() -> Any:
    return prunekit.DATASETS.build("synthetic", split="train", input_shape=(1, 8, 8),
                                   num_classes=3, size=48, seed=0)


def _searcher(name: str, **over: Any) -> Searcher:
    hp = dict(SEARCHERS.get(name).contract_hparams)
    hp.update(over)
    return SEARCHERS.build(name, **hp)


def _run(name: str, seed: int = 0, workdir: Path | None = None, kill_after: int | None = None):
    ds = _data()
    s = _searcher(name)
    train, valid = s.split(ds)

    def stop(epoch: int) -> None:
        if kill_after is not None and epoch == kill_after:
            raise Killed(f"killed after epoch {epoch}")

    return s, s.run(train, valid, ds.spec, seed=seed, workdir=workdir, eps=0.1,
                    on_epoch_end=stop)


@pytest.fixture(scope="module", params=NAMES)
def first(request):
    """One finished search per searcher (shared by the tests below)."""
    return request.param, *_run(request.param)


def test_declared_metadata(first) -> None:
    name, s, _ = first
    cls = SEARCHERS.get(name)
    assert issubclass(cls, Searcher) and cls.registry_name == name
    assert cls.granularity == "architecture"
    assert cls.sparsity_target in ("params", "macs")
    assert "budget" in cls.contract_hparams


def test_deterministic_per_seed(first) -> None:
    name, _, res = first
    _, again = _run(name)
    assert again.genotype == res.genotype
    assert [h.get("loss") for h in again.history] == [h.get("loss") for h in res.history]


def test_within_budget_and_counted_on_the_built_network(first) -> None:
    name, s, res = first
    spec = _data().spec
    assert res.params <= s.budget
    assert res.params == s.count(res.genotype, spec)
    own = sum(p.numel() for n, p in res.model.named_parameters() if "auxiliary" not in n)
    assert own == res.params
    summary = s.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["genotype"] == res.genotype and summary["params"] == res.params
    assert summary["budget"] == s.budget


def test_json_round_trip_rebuilds_the_network(first) -> None:
    name, s, res = first
    spec = _data().spec
    text = json.dumps(res.genotype)
    rebuilt = _searcher(name).build(json.loads(text), spec)
    a, b = res.model.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert [v.shape for v in a.values()] == [v.shape for v in b.values()]
    with torch.no_grad():
        assert rebuilt.eval()(torch.rand(2, *spec.input_shape)).shape == (2, spec.num_classes)


def test_killed_search_resumes_to_the_same_genotype(first, tmp_path: Path) -> None:
    name, _, res = first
    with pytest.raises(Killed):
        _run(name, workdir=tmp_path, kill_after=0)
    assert any(tmp_path.iterdir())  # it checkpointed before the kill
    _, resumed = _run(name, workdir=tmp_path)
    assert resumed.genotype == res.genotype
    assert len(resumed.history) == len(res.history)
    # a finished search is read back, not repeated
    _, again = _run(name, workdir=tmp_path, kill_after=0)
    assert again.genotype == res.genotype


@pytest.mark.parametrize("name", NAMES)
def test_bad_budgets_are_one_line_errors(name: str) -> None:
    with pytest.raises(ValueError) as exc:
        _searcher(name, budget=-1)
    assert "budget" in str(exc.value) and "\n" not in str(exc.value)
    s = _searcher(name, budget=1)
    with pytest.raises(ValueError) as exc:
        s.check_budget(_data().spec)
    assert "smallest possible network" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises((TypeError, ValueError), match="no option|unexpected|unknown"):
        _searcher(name, no_such_hparam=1)


def test_a_given_genotype_is_trained_without_a_search(first) -> None:
    """``genotype=`` (retraining a searched network with other seeds): no search epoch, the
    same genotype and network; a given genotype above the budget is a one-line error."""
    name, s, res = first
    ds = _data()
    given = _searcher(name, genotype=res.genotype)
    given.check_budget(ds.spec)
    train, valid = given.split(ds)
    out = given.run(train, valid, ds.spec, seed=1, eps=0.1,
                    on_epoch_end=lambda e: pytest.fail("a search epoch ran"))
    assert out.genotype == res.genotype and out.history == [] and out.params == res.params
    assert given.summary()["genotype_given"] is True and s.summary()["genotype_given"] is False
    tight = _searcher(name, genotype=res.genotype, budget=res.params - 1)
    with pytest.raises(ValueError, match="above the budget") as exc:
        tight.check_budget(ds.spec)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError) as exc:
        _searcher(name, genotype={"normal": "nonsense"})
    assert "\n" not in str(exc.value)
