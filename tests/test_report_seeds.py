"""Issue 19 / 25 report statistics on synthetic results: the seed-level verdict, its interval,
p-value and minimum detectable difference against scipy / statsmodels, the training-budget
sentence, pairing across model families (``--versus lrnas``) and the CSV output."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from prunekit.bench.report import report
from prunekit.bench.store import ResultsStore
from prunekit.cli import main
from prunekit.errors import ConfigError

from report_fixtures import add_run

KEY = "synthetic:vgg-small:0.1"
N = 300
#: per seed: (examples only the method gets right, examples only random-channel gets right)
CONSISTENT = [(40, 10), (45, 12), (38, 9), (42, 11)]      # d2bc: +10 points every seed
ERRATIC = [(66, 6), (10, 16), (60, 6), (12, 9)]           # l1-channel: +20, -2, +18, +1


def _flip(base: np.ndarray, gain: int, loss: int, rng: np.random.Generator) -> np.ndarray:
    """``base`` with ``gain`` wrong examples made right and ``loss`` right ones made wrong."""
    out = base.copy()
    wrong, right = np.flatnonzero(~base), np.flatnonzero(base)
    out[rng.choice(wrong, gain, replace=False)] = True
    out[rng.choice(right, loss, replace=False)] = False
    return out


def _budget(after: tuple[int, int], passes: float) -> dict:
    return {"train_epochs": json.dumps({"pretrain": 5, "calibrate": 0, "prune": after[0],
                                        "finetune": after[1]}),
            "train_passes": passes, "train_cpu_s": passes / 1000}


def _seeds_csv(tmp_path: Path, budgets: bool = True) -> tuple[Path, dict]:
    """4 seeds of dense, random-channel, d2bc and l1-channel (50 % MACs) on the same 300
    examples; the flags of every run by (method, seed)."""
    store = ResultsStore(tmp_path / "results.csv")
    rng = np.random.default_rng(7)
    flags = {}
    for seed in range(4):
        rc = rng.random(N) < 0.5
        dense = _flip(rc, 30 + 3 * seed, 0, rng)
        runs = {"dense": dense, "random-channel": rc,
                "d2bc": _flip(rc, *CONSISTENT[seed], rng),
                "l1-channel": _flip(rc, *ERRATIC[seed], rng)}
        for method, f in runs.items():
            flags[method, seed] = f
            extra = {} if not budgets else _budget(
                {"d2bc": (2, 2), "l1-channel": (0, 6)}.get(method, (0, 4)),
                {"d2bc": 1.3e5, "l1-channel": 1.01e5}.get(method, 1e5))
            add_run(store, f"{method}-{seed}", method, {"clean": f, "pgd-5-1": f}, seed=seed,
                    sparsity=0.0 if method == "dense" else 0.5,
                    granularity="none" if method == "dense" else "channel",
                    rel_macs=1.0 if method == "dense" else 0.5,
                    rel_params=1.0 if method == "dense" else 0.5, extra=extra)
    return store.path, flags


def _by(rep, method: str, ref: str, metric: str = "clean"):
    return next(c for c in rep.comparisons[KEY] if c.method == method and c.reference == ref
                and c.metric == metric)


def test_seed_level_verdict_interval_p_and_mdd_against_scipy_statsmodels(tmp_path: Path) -> None:
    path, flags = _seeds_csv(tmp_path)
    rep = report(path, versus="dense,random-channel", metrics=["clean"], n_resamples=999)
    d2bc, l1 = _by(rep, "d2bc", "random-channel"), _by(rep, "l1-channel", "random-channel")
    dense = _by(rep, "dense", "random-channel")   # paired at random-channel's only sparsity
    p_seeds = []
    for c, method in ((dense, "dense"), (d2bc, "d2bc"), (l1, "l1-channel")):
        a = [flags[method, s].mean() for s in range(4)]
        b = [flags["random-channel", s].mean() for s in range(4)]
        per_seed = 100 * (np.array(a) - np.array(b))
        assert c.seeds == 4 and c.basis == "seeds"
        assert c.diff.mean == pytest.approx(per_seed.mean())
        assert c.p_seed == pytest.approx(sps.ttest_rel(a, b).pvalue)         # paired t over seeds
        lo, hi = sps.t.interval(0.95, 3, loc=per_seed.mean(), scale=sps.sem(per_seed))
        assert (c.seed_t.lo, c.seed_t.hi) == (pytest.approx(lo), pytest.approx(hi))
        eff = TTestPower().solve_power(nobs=4, alpha=0.05, power=0.8, alternative="two-sided")
        assert c.mdd == pytest.approx(eff * per_seed.std(ddof=1))
        assert TTestPower().power(c.mdd / per_seed.std(ddof=1), 4, 0.05) == pytest.approx(0.8)
        p_seeds.append(c.p_seed)
    # Holm over the table's three seed-level tests (statsmodels)
    _, adj, _, _ = multipletests(p_seeds, method="holm")
    assert [dense.p_seed_holm, d2bc.p_seed_holm, l1.p_seed_holm] == pytest.approx(list(adj))
    assert d2bc.seed_tests == 3
    # d2bc: consistent over seeds -> both tests reject -> significant
    assert d2bc.p_holm < 0.05 and d2bc.p_seed_holm < 0.05 and d2bc.significant
    # l1-channel: the example-level test rejects, the seed-level test does not -> not significant
    assert l1.p_holm < 0.05 and not l1.p_seed_holm < 0.05 and not l1.significant
    assert "the t-interval over seeds does not (seed-level p" in l1.disagreement
    # the table prints those numbers
    t = rep.tables[f"comparison:{KEY}:random-channel"].set_index("method")
    assert t.loc["d2bc", "Δ clean (points)"].endswith(" *")
    assert t.loc["l1-channel", "seeds 95 % clean"] == (f"[{l1.seed_t.lo:+.1f}, "
                                                        f"{l1.seed_t.hi:+.1f}]")
    assert t.loc["l1-channel", "p seeds clean (Holm)"] == f"{l1.p_seed_holm:.3g}"
    assert t.loc["l1-channel", "MDD clean"] == f"{l1.mdd:.1f}"
    assert f"MDD {l1.mdd:.1f}" in rep.readings[KEY]
    assert "paired comparison against dense" in rep.text      # both references are reported


def test_training_budget_sentence_and_flags(tmp_path: Path) -> None:
    path, _ = _seeds_csv(tmp_path)
    rep = report(path, versus="random-channel", metrics=["clean"], n_resamples=200)
    assert ("Training budget: epochs after pretraining differ -- random-channel 4 (after 5 "
            "pretraining); dense 0% 4 (after 5 pretraining); d2bc 50% 4 (after 5 pretraining); "
            "l1-channel 50% 6 (after 5 pretraining); training forward passes within 30.0 % "
            "(largest / smallest cell mean)" in rep.text)
    assert ("differs from its reference: d2bc 50% (1.30× random-channel's training forward "
            "passes); l1-channel 50% (6 epochs after pretraining vs 4 for random-channel)"
            in rep.text)
    d2bc = _by(rep, "d2bc", "random-channel")
    assert d2bc.passes_ratio == pytest.approx(1.3) and "1.30×" in d2bc.budget_note
    assert _by(rep, "dense", "random-channel").budget_note == ""     # same epochs and passes
    t = rep.tables[f"comparison:{KEY}"].set_index("method")
    assert t.loc["d2bc", "passes ×ref"] == "1.30×" and t.loc["l1-channel", "passes ×ref"] == \
        "1.01×"
    assert "6 epochs after pretraining vs 4" in t.loc["l1-channel", "note"]


def test_training_budget_sentence_when_equal() -> None:
    from prunekit.bench.budget import CellBudget, budget_sentence
    same = {k: CellBudget(((5, 8),), p, 10.0, 2, 0) for k, p in (("a", 100.0), ("b", 103.0))}
    text = budget_sentence(same, {})
    assert text.startswith("Training budget: equal epochs after pretraining (8) for every "
                           "method, pretraining 5 epochs; training forward passes within 3.0 %")
    half = {**same, "c": CellBudget((), math.nan, math.nan, 1, 1)}
    assert "unknown for c (rows without the schema-v3 training columns)" in \
        budget_sentence(half, {})


def test_training_budget_unknown_for_old_rows(tmp_path: Path) -> None:
    path, _ = _seeds_csv(tmp_path, budgets=False)
    rep = report(path, metrics=["clean"], n_resamples=200)
    assert "Training budget: unknown (no train_epochs / train_passes / train_cpu_s" in rep.text
    assert "passes ×ref" not in rep.tables[f"comparison:{KEY}"].columns


def test_one_seed_keeps_the_example_level_test_and_says_so(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    rng = np.random.default_rng(1)
    rc = rng.random(N) < 0.5
    add_run(store, "rc", "random-channel", {"clean": rc}, sparsity=0.5, granularity="channel")
    add_run(store, "d2bc", "d2bc", {"clean": _flip(rc, 30, 5, rng)}, sparsity=0.5,
            granularity="channel")
    rep = report(store.path, versus="random-channel", metrics=["clean"])
    c = _by(rep, "d2bc", "random-channel")
    assert c.basis == "examples" and c.significant and math.isnan(c.p_seed)
    assert "One seed: the uncertainty unit is the examples of one trained model" in rep.text
    assert "MDD" not in rep.text and "seeds 95 %" not in rep.text
    assert "significant with one seed = Holm-adjusted exact McNemar p < 0.05" in rep.readings[KEY]


def _families_csv(tmp_path: Path, lrnas_index: int = 0) -> Path:
    """3 seeds: LRNAS on ``darts`` (510k MACs, 33k params) and pruned vgg-small rows on the
    same 300 examples: d2bc (500k MACs, 34k params: both matched), hydra-channel (500k MACs,
    20k params: MACs only)."""
    store = ResultsStore(tmp_path / "results.csv")
    rng = np.random.default_rng(3)
    for seed in range(3):
        base = rng.random(N) < 0.5
        idx = np.arange(N) + lrnas_index
        add_run(store, f"lrnas-{seed}", "lrnas", {"clean": base}, seed=seed, model="darts",
                granularity="architecture", dense_macs=5.1e5, dense_params=3.3e4, index=idx)
        add_run(store, f"d2bc-{seed}", "d2bc", {"clean": _flip(base, 20 + seed, 5, rng)},
                seed=seed, sparsity=0.5, granularity="channel", rel_macs=0.5, rel_params=0.34)
        add_run(store, f"hc-{seed}", "hydra-channel", {"clean": _flip(base, 5, 6 + seed, rng)},
                seed=seed, sparsity=0.5, granularity="channel", rel_macs=0.5, rel_params=0.2)
    return store.path


def test_versus_pairs_across_model_families_with_cost_matching(tmp_path: Path) -> None:
    path = _families_csv(tmp_path)
    rep = report(path, versus="lrnas", metrics=["clean"], n_resamples=999)
    d2bc, hc = _by(rep, "d2bc", "lrnas"), _by(rep, "hydra-channel", "lrnas")
    assert d2bc.seeds == hc.seeds == 3 and d2bc.n == N
    assert d2bc.macs_ratio == pytest.approx(5e5 / 5.1e5)          # absolute, not per family
    assert d2bc.params_ratio == pytest.approx(3.4e4 / 3.3e4)
    assert hc.params_ratio == pytest.approx(2e4 / 3.3e4)
    assert not math.isnan(d2bc.p_seed) and not math.isnan(d2bc.mdd)   # same statistics
    t = rep.tables[f"comparison:{KEY}"].set_index("method")
    assert t.loc["d2bc", "matched (≤5 %)"] == "both (MACs -2.0 %, non-zero params +3.0 %)"
    assert t.loc["hydra-channel", "matched (≤5 %)"] == \
        "MACs (-2.0 %; non-zero params -39.4 %)"
    assert "paired comparison against lrnas (darts, across model families)" in rep.text
    assert "Across model families: LRNAS ran on darts, the rows on vgg-small" in rep.text


def test_versus_errors_name_the_valid_choices(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    path = _families_csv(tmp_path, lrnas_index=1000)            # LRNAS on other examples
    with pytest.raises(ConfigError, match=r"--versus 'lrnas': no run pairs with a lrnas run on "
                                          r"the same evaluation examples .*methods that pair: "
                                          r"d2bc, hydra-channel$"):
        report(path, versus="lrnas", metrics=["clean"], n_resamples=200)
    assert main(["report", str(path), "--versus", "lrnas-x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["prunekit report: error: --versus 'lrnas-x': no finished run of that method; "
                   "methods: lrnas, d2bc, hydra-channel"]


def test_csv_output_holds_the_numbers(tmp_path: Path) -> None:
    path, _ = _seeds_csv(tmp_path)
    out = tmp_path / "tables"
    assert main(["report", str(path), "--versus", "random-channel", "--metrics", "clean",
                 "--bootstrap", "200", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "comparisons.csv")))
    rep = report(path, versus="random-channel", metrics=["clean"], n_resamples=200)
    for r in rows:
        c = _by(rep, r["method"], "random-channel")
        assert float(r["diff"]) == pytest.approx(c.diff.mean)
        assert float(r["p_seed"]) == pytest.approx(c.p_seed)
        assert float(r["mdd"]) == pytest.approx(c.mdd)
        assert r["significant"] == str(int(c.significant)) and r["basis"] == "seeds"
    table = list(csv.reader(open(out / "comparison-synthetic-vgg-small-0.1.csv")))
    assert "MDD clean" in table[0] and (out / "accuracy-synthetic-vgg-small-0.1.csv").exists()


def test_grid_bench_versus_is_checked_before_the_grid_runs() -> None:
    from prunekit.bench.grid import Grid
    base = {"method": "dense", "dataset": "fashion_mnist", "model": "vgg-small"}
    assert Grid.from_dict({"base": base, "bench": {"versus": "dense,random-channel"}}) \
        .bench["versus"] == "dense,random-channel"
    Grid.from_dict({"base": base, "bench": {"versus": ["dense", "lrnas"]}})
    with pytest.raises(ConfigError, match="bench versus must be a method name"):
        Grid.from_dict({"base": base, "bench": {"versus": 3}})


def test_a_searchers_supernet_epochs_count_as_its_pretraining() -> None:
    """LRNAS's search trains a supernet whose weights are discarded: its counterpart of the
    pruners' dense pretraining, not epochs of the evaluated network (issue 25)."""
    from prunekit.bench.budget import budget_note, budget_sentence, cell_budget, row_budget
    import pandas as pd
    lrnas = row_budget({"train_epochs": '{"pretrain": 0, "search": 6, "train": 6}'})
    pruned = row_budget({"train_epochs": '{"pretrain": 5, "prune": 2, "finetune": 4}'})
    assert (lrnas.pretrain, lrnas.after, lrnas.before_kind) == (6, 6, "search")
    assert (pruned.pretrain, pruned.after, pruned.before_kind) == (5, 6, "pretraining")
    cells = {k: cell_budget(pd.DataFrame([{"train_epochs": t, "train_passes": 100.0}]))
             for k, t in (("LRNAS", '{"pretrain": 0, "search": 6, "train": 6}'),
                          ("d2bc", '{"pretrain": 5, "prune": 2, "finetune": 4}'))}
    note = budget_note(cells["d2bc"], cells["LRNAS"], "lrnas")
    assert note == "training budget differs: 5 pretraining epochs vs 6 search for lrnas"
    assert budget_sentence(cells, {}).startswith(
        "Training budget: equal epochs after pretraining or search (6) for every method; "
        "before them: LRNAS 6 search; d2bc 5 pretraining")
