"""Paired comparisons, multi-seed combination and the computed reading of `prunekit report`, on
synthetic per-example files (tests/report_fixtures.py, the documented npz format)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from prunekit.bench.compare import SIGN_FLIP, Comparison
from prunekit.bench.reading import cost_text, matched_costs, same_cost
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
    """dense; hydra and admm masked at 90 % (dense MACs, 0.10x non-zero params), losing ``big``
    and ``small`` robust examples; a channel model at 0.10x MACs losing ``big``; magnitude with
    its non-zero parameters not measured. Robust accuracy 50 % for dense on 400 examples."""
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
    add_run(store, "magnitude", "magnitude", {"clean": clean, "pgd-5-1": worse(big)},
            sparsity=0.9, rel_params=math.nan)
    return store


def test_same_cost_needs_both_measured_costs() -> None:
    def c(macs: float, params: float) -> Comparison:
        return Comparison("trades", "m", "", 0.9, "worst", "dense", macs_ratio=macs,
                          params_ratio=params)

    assert same_cost(c(1.0, 1.03)) and matched_costs(c(1.0, 1.03)) == ["MACs", "non-zero params"]
    masked = c(1.0, 0.1)                     # a weight-masked model against dense
    assert not same_cost(masked) and matched_costs(masked) == ["MACs"]
    assert cost_text(masked) == "the same MACs (1.00×) but 0.10× non-zero params"
    unknown = c(1.0, math.nan)               # NaN = not measured: never a match
    assert not same_cost(unknown) and matched_costs(unknown) == ["MACs"]
    assert cost_text(unknown) == "1.00× MACs, non-zero params not measured"
    assert matched_costs(c(math.nan, math.nan)) == [] and not same_cost(c(0.1, 0.14))


def test_reading_masked_vs_dense_is_a_trade_off_not_like_for_like(tmp_path: Path) -> None:
    rep = report(_reading_fixture(tmp_path, big=40, small=3).path)
    text = rep.readings[KEY]
    assert _by(rep, "hydra", "worst").significant and not _by(rep, "admm", "worst").significant
    assert "same cost as dense:" not in text
    assert ("other cost than dense (a trade-off, not a like-for-like comparison): d2bc 90% at "
            "0.10× MACs, 0.14× non-zero params: -10.0 points" in text)
    assert ("hydra 90% at the same MACs (1.00×) but 0.10× non-zero params: -10.0 points "
            "[" in text)
    assert ("admm 90% at the same MACs (1.00×) but 0.10× non-zero params: -0.8 points" in text)
    assert ("cost not fully measured (not a like-for-like comparison): magnitude 90% at 1.00× "
            "MACs, non-zero params not measured" in text)
    assert ("in short: no method has the same MACs and non-zero params as dense; significant at "
            "another cost: d2bc 90% (-10.0; 0.10× MACs, 0.14× non-zero params), hydra 90% "
            "(-10.0; the same MACs (1.00×) but 0.10× non-zero params); noise at another cost: "
            "admm 90%; significant at a cost not fully measured: magnitude 90% (-10.0; 1.00× "
            "MACs, non-zero params not measured)." in text)
    assert ("same cost as each other: admm 90%, hydra 90% (1.00× MACs, 0.10× non-zero params; "
            "`--versus admm` tests them pairwise)" in text)
    assert text in rep.text and rep.text.rstrip().endswith(text.splitlines()[-1])


def test_reading_like_for_like_against_a_same_cost_reference(tmp_path: Path) -> None:
    rep = report(_reading_fixture(tmp_path, big=40, small=3).path, versus="hydra")
    text = rep.readings[KEY]
    assert ("same cost as hydra: admm 90% at 1.00× MACs, 1.00× non-zero params: +9.2 points ["
            in text) and "significant)" in text
    assert ("in short: at the same cost (MACs and non-zero params within 5 % of hydra), admm 90% "
            "(+9.2) differs significantly; significant at another cost: dense 0% (+10.0; the same "
            "MACs (1.00×) but 10.00× non-zero params)" in text)
    # different results, different reading: nothing significant at the same cost
    rep = report(_reading_fixture(tmp_path / "b", big=4, small=1).path, versus="hydra")
    text = rep.readings[KEY]
    assert ("at the same cost (MACs and non-zero params within 5 % of hydra), no method differs "
            "significantly; noise at the same cost: admm 90%" in text)
    assert "significant)" not in text


def test_reading_names_a_seed_spread_above_two_points(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    diffs = []
    for seed, (b, c) in enumerate([(40, 5), (10, 6), (25, 4)]):   # 11.7 / 1.3 / 7.0 points
        hydra, dense = paired_flags(300, only_a=b, only_b=c, both=150)
        add_run(store, f"dense-{seed}", "dense", {"clean": dense, "pgd-5-1": dense}, seed=seed)
        add_run(store, f"hydra-{seed}", "hydra", {"clean": hydra, "pgd-5-1": hydra}, seed=seed,
                sparsity=0.5, rel_params=0.5)
        diffs.append(100 * (b - c) / 300)
    rep = report(store.path, metrics=["clean"], n_resamples=99)
    c = _by(rep, "hydra", "clean")
    std = np.std(diffs, ddof=1)
    assert c.seed_t.std == pytest.approx(std) and std > 2.0
    assert f"seed spread: the per-seed differences vary by more than 2 points (their std) for " \
           f"hydra 50% ({std:.1f}, MDD {c.mdd:.1f})" in rep.readings[KEY]


def test_several_seeds_t_interval_and_example_level_test(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    counts = [(20, 5), (18, 6), (25, 4)]              # (only hydra right, only dense right)
    diffs, sums = [], np.zeros(300, int)
    for seed, (b, c) in enumerate(counts):
        hydra, dense = paired_flags(300, only_a=b, only_b=c, both=150)
        hydra, dense = np.roll(hydra, 7 * seed), np.roll(dense, 7 * seed)   # other examples
        add_run(store, f"dense-{seed}", "dense", {"clean": dense, "pgd-5-1": dense}, seed=seed)
        add_run(store, f"hydra-{seed}", "hydra", {"clean": hydra, "pgd-5-1": hydra}, seed=seed,
                sparsity=0.5, rel_params=0.5)
        diffs.append(100 * (b - c) / 300)
        sums += hydra.astype(int) - dense.astype(int)
    rep = report(store.path, metrics=["clean"], n_resamples=999)
    c = _by(rep, "hydra", "clean")
    assert c.seeds == 3 and c.diff.mean == pytest.approx(np.mean(diffs))
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(diffs), scale=sps.sem(diffs))
    assert (c.seed_t.lo, c.seed_t.hi) == (pytest.approx(lo), pytest.approx(hi))
    # the test: sign flips of the per-example sums over seeds (scipy's permutation test)
    d = sums[sums != 0]
    ref = sps.permutation_test((d,), lambda x, axis=-1: x.sum(axis=axis), vectorized=True,
                               permutation_type="samples", n_resamples=999, batch=1000,
                               rng=np.random.default_rng(0)).pvalue
    assert c.test == SIGN_FLIP and c.p == pytest.approx(ref)
    assert c.p != pytest.approx(sps.binomtest(15, 78, 0.5).pvalue)   # not the summed tables
    assert c.significant                      # p small and the seed interval excludes 0
    # the seed-level test and the MDD against their oracles (scipy ttest_rel, statsmodels)
    acc_h = [(150 + b) / 300 for b, _ in counts]
    acc_d = [(150 + c) / 300 for _, c in counts]
    assert c.p_seed == pytest.approx(sps.ttest_rel(acc_h, acc_d).pvalue)
    assert c.p_seed_holm == pytest.approx(c.p_seed) and c.seed_tests == 1   # one seed test
    eff = TTestPower().solve_power(nobs=3, alpha=0.05, power=0.8, alternative="two-sided")
    assert c.mdd == pytest.approx(eff * np.std(diffs, ddof=1))
    t = rep.tables[f"comparison:{KEY}"].iloc[0]
    assert t["seeds 95 % clean"] == f"[{lo:+.1f}, {hi:+.1f}]"
    assert t["p seeds clean (Holm)"] == f"{c.p_seed:.3g}" and t["MDD clean"] == f"{c.mdd:.1f}"
    assert c.basis == "seeds"
    assert (f"3 seeds: seeds [{lo:+.1f}, {hi:+.1f}], seed-level p {c.p_seed:.3g}, "
            f"MDD {c.mdd:.1f}; examples [") in rep.readings[KEY]
    assert "sign-flip permutation test over examples" in rep.text
    assert np.std(diffs, ddof=1) < 2.0 and "seed spread" not in rep.readings[KEY]
    # accuracy cells over seeds: mean ± std [t-interval]
    acc = [(150 + b) / 300 for b, _ in counts]
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(acc), scale=sps.sem(acc))
    assert (f"{100 * np.mean(acc):.1f} ± {100 * np.std(acc, ddof=1):.1f} "
            f"[{100 * lo:.1f}, {100 * hi:.1f}]") in rep.text


def test_zero_spread_over_seeds_is_never_significant(tmp_path: Path) -> None:
    """Two seeds with the same large difference: p tiny, but a t-interval of zero width is no
    interval, so the seed condition fails and the note says why."""
    store = ResultsStore(tmp_path / "results.csv")
    for seed in (0, 1):
        hydra, dense = paired_flags(300, only_a=40, only_b=0, both=100)
        hydra, dense = np.roll(hydra, 50 * seed), np.roll(dense, 50 * seed)
        add_run(store, f"dense-{seed}", "dense", {"clean": dense, "pgd-5-1": dense}, seed=seed)
        add_run(store, f"hydra-{seed}", "hydra", {"clean": hydra, "pgd-5-1": hydra}, seed=seed,
                sparsity=0.5, rel_params=0.5)
    rep = report(store.path, metrics=["clean"], n_resamples=999)
    c = _by(rep, "hydra", "clean")
    assert c.p_holm < 0.01 and c.seed_t.std == 0.0 and math.isnan(c.seed_t.lo)
    assert not c.seed_t.excludes(0.0) and not c.significant
    assert "t-interval over seeds does not (no spread over seeds: unknown)" in c.disagreement
    assert c.disagreement in rep.tables[f"comparison:{KEY}"].iloc[0]["note"]


def test_interval_excluding_zero_beside_noise_says_why(tmp_path: Path) -> None:
    """5 discordant examples, all one way, on 500: the percentile (and BCa) bootstrap interval
    excludes 0, the exact McNemar p is 0.0625: noise, and the report says the test decides."""
    store = ResultsStore(tmp_path / "results.csv")
    hydra, dense = paired_flags(500, only_a=5, only_b=0, both=200)
    add_run(store, "dense", "dense", {"clean": dense, "pgd-5-1": dense})
    add_run(store, "hydra", "hydra", {"clean": hydra, "pgd-5-1": hydra}, sparsity=0.5,
            rel_params=0.5)
    rep = report(store.path, metrics=["clean"])
    c = _by(rep, "hydra", "clean")
    assert c.diff.excludes(0.0) and c.p == pytest.approx(0.0625) and not c.significant
    assert ("the bootstrap interval excludes 0, but the exact McNemar test does not reject "
            "(p 0.0625; 5 discordant examples" in c.disagreement)
    assert c.disagreement in rep.tables[f"comparison:{KEY}"].iloc[0]["note"]
    assert f"(p 0.0625, noise: {c.disagreement})" in rep.readings[KEY]


def test_method_summary_warnings_are_flagged(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    a, b = paired_flags(100, 10, 2, 50)
    add_run(store, "dense", "dense", {"clean": b, "pgd-5-1": b})
    add_run(store, "admm", "admm", {"clean": a, "pgd-5-1": a}, sparsity=0.9, rel_params=0.1,
            summary={"projection": "irregular", "converged": False, "rel_residual": 0.31})
    add_run(store, "hydra", "hydra", {"clean": a, "pgd-5-1": a}, sparsity=0.9, rel_params=0.1,
            summary={"warnings": ["scores collapsed in layer 3"]})
    add_run(store, "magnitude", "magnitude", {"clean": a, "pgd-5-1": a}, sparsity=0.9,
            rel_params=0.1, summary={"converged": True, "warnings": []})
    rep = report(store.path)
    t = rep.tables[f"accuracy:{KEY}"]
    assert list(t["method"]) == ["dense", "admm †", "hydra †", "magnitude"]
    assert ("† The method's own summary (CSV `method_summary`) warns: admm 90% (trades): not "
            "converged; hydra 90% (trades): scores collapsed in layer 3." in rep.text)
    assert "admm †" in list(rep.tables[f"comparison:{KEY}"]["method"])
    text = rep.readings[KEY]
    assert "admm 90% † at the same MACs" in text
    assert ("trades, † the method's own summary warns (its accuracy may not show the method "
            "working as intended): admm 90%: not converged; hydra 90%: scores collapsed in "
            "layer 3." in text)
    assert "magnitude 90% †" not in text
    assert "$\\dagger$" in report(store.path, fmt="latex").text


def test_duplicates_newest_kept_and_worst_needs_the_same_attacks(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    a, b = paired_flags(200, 30, 2, 80)
    add_run(store, "dense", "dense", {"clean": b, "pgd-5-1": b})
    add_run(store, "hydra-new", "hydra", {"clean": a, "pgd-5-1": a}, sparsity=0.5,
            rel_params=0.5, finished_at="2026-01-02T00:00:00+00:00")
    add_run(store, "hydra-old", "hydra", {"clean": b, "pgd-5-1": b}, sparsity=0.5,
            rel_params=0.5, finished_at="2026-01-01T00:00:00+00:00")
    add_run(store, "admm", "admm", {"clean": a, "pgd-5-1": a, "apgd-ce": a}, sparsity=0.5,
            rel_params=0.5)
    rep = report(store.path)
    assert rep.duplicates == [("hydra-old", "hydra-new")] and rep.n_ok == 3
    assert ("Duplicate runs (1; same loss, method, variant, sparsity, seed and fold): only the "
            "newest (finished_at) is used.\n- hydra-old: dropped, older than hydra-new"
            in rep.text)
    h = _by(rep, "hydra", "clean")
    assert h.seeds == 1 and h.diff.mean == pytest.approx(14.0)      # the newest row's flags
    t = rep.tables[f"accuracy:{KEY}"]
    assert t[t["method"] == "hydra"].iloc[0]["runs"] == "1"
    # admm's worst case is over pgd-5-1 and apgd-ce, dense's over pgd-5-1 only: no pair
    w = _by(rep, "admm", "worst")
    assert not w.paired and w.note == "worst case over different attacks"
    assert _by(rep, "admm", "clean").paired


def test_only_seeds_on_the_common_examples_enter_estimate_interval_and_test(
        tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    for seed, (ka, kb, idx) in enumerate([(20, 2, None), (22, 3, None),
                                          (0, 30, np.arange(100, 400))]):
        a, b = paired_flags(300, ka, kb, 100)
        add_run(store, f"dense-{seed}", "dense", {"clean": b, "pgd-5-1": b}, seed=seed,
                index=idx)
        add_run(store, f"hydra-{seed}", "hydra", {"clean": a, "pgd-5-1": a}, seed=seed,
                sparsity=0.5, rel_params=0.5, index=idx)
    rep = report(store.path, metrics=["clean"], n_resamples=999)
    c = _by(rep, "hydra", "clean")
    assert c.seeds == 2 and c.note == "2 of 3 seeds (the others evaluated other test examples)"
    assert c.diff.mean == pytest.approx(100 * np.mean([18 / 300, 19 / 300]))
    assert c.diff.lo > 0 and (c.only_method, c.only_reference) == (42, 5)


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
