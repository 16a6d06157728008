"""Paired comparisons, multi-seed combination and the computed reading of `prunekit report`, on
synthetic per-example files (tests/report_fixtures.py, the documented npz format)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from prunekit.bench.report import report
from prunekit.bench.store import ResultsStore
from prunekit.cli import main

from report_fixtures import add_run, paired_flags

KEY = "synthetic:vgg-small:0.1"


def _by(rep, method: str, metric: str):
    return next(c for c in rep.comparisons[KEY] if c.method == method and c.metric == metric)


def test_mcnemar_p_of_two_runs_is_scipys_for_the_known_counts(tmp_path: Path) -> None:
    """Issue 13 acceptance: flags that differ on a known number of examples (hydra right and
    dense wrong on 12, the reverse on 4) give the exact McNemar p scipy gives for 12 vs 4."""
    store = ResultsStore(tmp_path / "results.csv")
    hydra, dense = paired_flags(200, only_a=12, only_b=4, both=100)
    rob = np.zeros(200, bool)
    rob[:50] = True
    add_run(store, "dense", "dense", {"clean": dense, "pgd-5-1": rob & dense})
    add_run(store, "hydra", "hydra", {"clean": hydra, "pgd-5-1": rob & hydra}, sparsity=0.9,
            rel_params=0.1)
    rep = report(store.path)
    c = _by(rep, "hydra", "clean")
    assert (c.only_method, c.only_reference, c.seeds, c.n) == (12, 4, 1, 200)
    assert c.p == pytest.approx(sps.binomtest(4, 16, 0.5).pvalue, rel=1e-12)
    assert c.diff.mean == pytest.approx(4.0)                    # (112 - 104) / 200 points
    w = _by(rep, "hydra", "worst")
    _, adj, _, _ = multipletests([c.p, w.p], method="holm")     # Holm over the table's tests
    assert [c.p_holm, w.p_holm] == pytest.approx(list(adj))
    assert "paired comparison against dense" in rep.text
    assert f"p clean (Holm)" in rep.text and "+4.0 [" in rep.text


def _reading_fixture(tmp_path: Path, big: int, small: int) -> ResultsStore:
    """dense vs hydra (same MACs, robust difference ``big``), admm (same MACs, ``small``) and a
    cheaper channel model; robust accuracy 50 % for dense on 400 examples."""
    store = ResultsStore(tmp_path / "results.csv")
    n = 400
    clean = np.ones(n, bool)
    dense_rob = np.zeros(n, bool)
    dense_rob[:200] = True

    def worse(k: int) -> np.ndarray:
        f = dense_rob.copy()
        f[:k] = False
        return f

    add_run(store, "dense", "dense", {"clean": clean, "pgd-5-1": dense_rob})
    add_run(store, "hydra", "hydra", {"clean": clean, "pgd-5-1": worse(big)}, sparsity=0.9,
            rel_params=0.1)
    add_run(store, "admm", "admm", {"clean": clean, "pgd-5-1": worse(small)}, sparsity=0.9,
            rel_params=0.1)
    add_run(store, "d2bc", "d2bc", {"clean": clean, "pgd-5-1": worse(big)}, sparsity=0.9,
            granularity="channel", rel_macs=0.1, rel_params=0.14)
    return store


def test_reading_is_computed_significant_and_noise(tmp_path: Path) -> None:
    rep = report(_reading_fixture(tmp_path, big=40, small=3).path)
    text = rep.readings[KEY]
    assert _by(rep, "hydra", "worst").significant and not _by(rep, "admm", "worst").significant
    assert "same cost as dense: admm 90% at the same MACs" in text   # registry order
    assert "hydra 90% at the same MACs (1.00× MACs, 0.10× params): -10.0 points" in text
    assert "admm 90% at the same MACs (1.00× MACs, 0.10× params): -0.8 points" in text
    assert "(p <1e-4, significant)" in text and "noise)" in text
    assert "other cost than dense" in text and "d2bc 90% at 0.10× MACs, 0.14× params" in text
    assert ("in short: at the same cost, hydra 90% (-10.0) differs significantly from dense; "
            "noise at the same cost: admm 90%; significant at another cost: d2bc 90% (-10.0)"
            in text)
    assert text in rep.text and rep.text.rstrip().endswith(text.splitlines()[-1])
    # different results, different reading: nothing significant any more
    rep = report(_reading_fixture(tmp_path / "b", big=4, small=1).path)
    text = rep.readings[KEY]
    assert "no method differs significantly from dense at the same cost" in text
    assert "significant)" not in text and "significant at another cost" not in text


def test_several_seeds_t_interval_and_stratified_mcnemar(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    counts = [(20, 5), (18, 6), (25, 4)]              # (only hydra right, only dense right)
    diffs = []
    for seed, (b, c) in enumerate(counts):
        hydra, dense = paired_flags(300, only_a=b, only_b=c, both=150)
        add_run(store, f"dense-{seed}", "dense", {"clean": dense, "pgd-5-1": dense}, seed=seed)
        add_run(store, f"hydra-{seed}", "hydra", {"clean": hydra, "pgd-5-1": hydra}, seed=seed,
                sparsity=0.5, rel_params=0.5)
        diffs.append(100 * (b - c) / 300)
    rep = report(store.path, metrics=["clean"])
    c = _by(rep, "hydra", "clean")
    assert c.seeds == 3 and c.diff.mean == pytest.approx(np.mean(diffs))
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(diffs), scale=sps.sem(diffs))
    assert (c.seed_t.lo, c.seed_t.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert c.p == pytest.approx(sps.binomtest(15, 78, 0.5).pvalue)     # summed 2x2 tables
    assert c.significant                      # p tiny and the seed interval excludes 0
    assert "; seeds [" in rep.text and "3 seeds" in rep.readings[KEY]
    # accuracy cells over seeds: mean ± std [t-interval]
    acc = [(150 + b) / 300 for b, _ in counts]
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(acc), scale=sps.sem(acc))
    assert (f"{100 * np.mean(acc):.1f} ± {100 * np.std(acc, ddof=1):.1f} "
            f"[{100 * lo:.1f}, {100 * hi:.1f}]") in rep.text


def test_pairs_only_on_the_same_examples(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    a, b = paired_flags(100, 10, 2, 50)
    add_run(store, "dense", "dense", {"clean": b, "pgd-5-1": b})
    add_run(store, "hydra", "hydra", {"clean": a, "pgd-5-1": a}, sparsity=0.5,
            index=np.arange(100, 200))
    add_run(store, "admm", "admm", {"clean": a, "pgd-5-1": a}, sparsity=0.5, per_example=False)
    add_run(store, "d2bc", "d2bc", {"clean": a, "pgd-5-1": a}, sparsity=0.5,
            granularity="channel", rel_macs=0.5)
    rep = report(store.path)
    assert _by(rep, "hydra", "clean").note == "different test examples"
    assert _by(rep, "admm", "clean").note == "no per-example results"
    assert _by(rep, "d2bc", "clean").paired
    assert "Per-example results not recorded for 1 of 4 runs" in rep.text
    assert "not tested: admm 50% (no per-example results); hydra 50% (different test " \
           "examples)" in rep.readings[KEY]


def test_versus_and_metrics_flags(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = _reading_fixture(tmp_path, big=40, small=3)
    rep = report(store.path, versus="hydra", metrics=["pgd-5-1"])
    assert {c.reference for c in rep.comparisons[KEY]} == {"hydra"}
    assert {c.metric for c in rep.comparisons[KEY]} == {"pgd-5-1"}
    assert "paired comparison against hydra" in rep.text
    assert main(["report", str(store.path), "--versus", "hydra", "--metrics", "clean"]) == 0
    assert main(["report", str(store.path), "--versus", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--versus 'nope': no finished run of that method; methods: dense, hydra" in err
    assert main(["report", str(store.path), "--metrics", "clean,fab"]) == 2
    assert "--metrics fab: not measured; valid: clean, pgd-5-1, worst" in capsys.readouterr().err
