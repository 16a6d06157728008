"""prunekit.bench.report / `prunekit report`: tables with intervals and costs, plots, old CSVs,
method order and labels from the registry, attack labels, equal-cost views."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from prunekit.bench.equalcost import CostPoint, at_cost, common_costs, curve
from prunekit.bench.report import report
from prunekit.bench.store import ResultsStore
from prunekit.cli import main
from prunekit.pruning.base import Pruner
from prunekit.registry import PRUNERS

from report_fixtures import add_run

ROOT = Path(__file__).resolve().parents[1]
#: the first fmnist grid run (results schema v1: 35 columns, no per-example files), kept as a fixture
FMNIST_V1 = ROOT / "tests" / "data" / "fmnist-results-v1.csv"


def _row(run_id: str, method: str, loss: str, sp: float, seed: int, aa: float, **kw) -> dict:
    gran = {"dense": "none", "d2bc": "channel"}.get(method, "weight")
    return {"run_id": run_id, "status": "ok", "method": method, "granularity": gran,
            "loss": loss, "dataset": "fashion_mnist", "model": "vgg-small",
            "target_sparsity": sp, "seed": seed, "eps": 0.1, "n_eval": 100,
            "clean_acc": aa + 0.4, "pgd_acc": aa + 0.02, "apgd_acc": aa + 0.01, "aa_acc": aa,
            "worst_acc": aa, "weight_sparsity": sp, "macs_reduction": sp if gran != "weight" else 0,
            "params": int(1000 * (1 - sp)) if gran != "weight" else 1000,
            "macs": int(1e6 * (1 - sp)) if gran != "weight" else int(1e6),
            "attacks": "pgd-50-10;apgd-ce;autoattack", "pretrain_hash": loss, **kw}


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    store = ResultsStore(tmp_path / "results.csv")
    for loss in ("trades", "mart"):
        store.append(_row(f"{loss}-dense", "dense", loss, 0.0, 0, 0.50))
        for m, base in (("hydra", 0.40), ("d2bc", 0.45)):
            for sp in (0.5, 0.9):
                for seed, d in ((0, 0.0), (1, 0.02)):
                    store.append(_row(f"{loss}-{m}-{sp}-{seed}", m, loss, sp, seed,
                                      base - sp / 10 + d))
    store.append({"run_id": "trades-admm-0.9-0", "status": "failed", "method": "admm",
                  "loss": "trades", "target_sparsity": 0.9,
                  "error": "RuntimeError: non-finite loss"})
    return store.path


def test_accuracy_table_intervals_costs_and_order(csv_path: Path) -> None:
    rep = report(csv_path)
    t = rep.tables["accuracy:fashion_mnist:vgg-small:0.1"]
    # registry order: dense (granularity none), channel pruners, weight pruners
    assert list(zip(t["loss"], t["method"], t["target"]))[:5] == [
        ("trades", "dense", "0%"), ("trades", "d2bc", "50% macs"), ("trades", "d2bc", "90% macs"),
        ("trades", "hydra", "50% weights"), ("trades", "hydra", "90% weights")]
    assert list(t.columns) == ["loss", "method", "target", "MACs", "MACs red. %",
                               "non-zero params", "params red. %", "runs", "clean %", "PGD-50-10 %", "APGD-CE %",
                               "AutoAttack (standard) %", "worst case %"]
    dense = t.iloc[0]
    lo, hi = proportion_confint(50, 100, method="wilson")     # one run: Wilson over 100
    assert dense["AutoAttack (standard) %"] == f"50.0 [{100 * lo:.1f}, {100 * hi:.1f}]"
    # d2bc at 90 %: AA 0.36 and 0.38 over two seeds -> 37.0 ± 1.4 [t-interval, df 1]
    d2bc = t.iloc[2]
    lo, hi = sps.t.interval(0.95, 1, loc=0.37, scale=sps.sem([0.36, 0.38]))
    assert d2bc["AutoAttack (standard) %"] == f"37.0 ± 1.4 [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert (d2bc["runs"], d2bc["MACs"], d2bc["MACs red. %"]) == ("2", "100k", "90.0")
    hydra = t.iloc[4]   # a masked model keeps the dense MACs; no non-zero count before v2
    assert (hydra["MACs"], hydra["MACs red. %"], hydra["params red. %"],
            hydra["non-zero params"]) == ("1M", "0.0", "–", "–")


def test_report_markdown_failed_and_plots(csv_path: Path, tmp_path: Path) -> None:
    rep = report(csv_path, fmt="md", plots_dir=tmp_path / "plots")
    assert "| loss | method | target | MACs |" in rep.text
    assert "Failed runs (1):" in rep.text and "trades-admm-0.9-0: RuntimeError" in rep.text
    assert rep.n_ok == 18 and len(rep.failed) == 1
    assert "Per-example results not recorded for 18 of 18 runs" in rep.text
    assert "Paired comparisons against dense: unavailable" in rep.text
    names = sorted(p.name for p in rep.plots)
    assert names == sorted([f"acc_vs_sparsity_{m}.png" for m in
                            ("clean", "pgd-50-10", "apgd-ce", "autoattack", "worst")]
                           + ["pareto_macs.png", "pareto_params.png"])
    for p in rep.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_report_latex(csv_path: Path) -> None:
    text = report(csv_path, fmt="latex", intervals="full").text
    assert r"\begin{tabular}" in text and r"37.0 $\pm$ 1.4 [" in text
    compact = report(csv_path, fmt="latex").text    # LaTeX default: mean ± half-width
    assert r"37.0 $\pm$ 12.7" in compact and "[" not in compact.split(r"\midrule")[1][:200]
    assert r"90\% macs" in text and "% Failed runs (1):" in text
    with pytest.raises(ValueError, match="md or latex"):
        report(csv_path, fmt="html")


def test_report_cli(csv_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "t" / "report.md"
    assert main(["report", str(csv_path), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "| loss | method |" in cap.out and out.read_text() in cap.out
    assert "18 finished runs, 1 failed" in cap.err
    assert main(["report", str(tmp_path / "missing.csv")]) == 2
    assert "results file not found" in capsys.readouterr().err
    assert main(["report", str(csv_path), "--bootstrap", "5"]) == 2
    assert "--bootstrap must be >= 100" in capsys.readouterr().err


def test_old_schema_csv_reads_with_wilson_intervals() -> None:
    """The first published fmnist CSV (35 columns, no per-example files)."""
    rep = report(FMNIST_V1)
    assert rep.n_ok == 20
    assert not any(c.paired for c in rep.comparisons["fashion_mnist:vgg-small:0.1"])
    assert "Paired comparisons against dense: unavailable" in rep.text
    t = rep.tables["accuracy:fashion_mnist:vgg-small:0.1"]
    dense = t[(t["loss"] == "trades") & (t["method"] == "dense")].iloc[0]
    lo, hi = proportion_confint(104, 200, method="wilson")        # AA 52.0 % of 200
    assert dense["APGD-CE + APGD-T %"] == f"52.0 [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert "APGD-CE + APGD-T = `autoattack-fast` (not the standard AutoAttack)" in rep.text
    # d2bc's parameter reduction is derived from the dense run; masked models' is unknown
    d2bc = t[(t["loss"] == "trades") & (t["method"] == "d2bc")].iloc[1]
    assert d2bc["params red. %"] == f"{100 * (1 - 18878 / 135674):.1f}"
    assert "matched MACs" in rep.text


def test_method_label_and_order_from_registry_metadata(tmp_path: Path) -> None:
    class Mine(Pruner):
        granularity = "weight"
        label = "My pruner"
        order = -1

        def attach(self, model, example_inputs):  # pragma: no cover - never built here
            pass

        def masks(self):  # pragma: no cover
            return {}

        def finalize(self, model):  # pragma: no cover
            return model

    PRUNERS.add("mine-test", Mine)
    try:
        store = ResultsStore(tmp_path / "results.csv")
        f = {"clean": np.ones(10, bool), "pgd-5-1": np.ones(10, bool)}
        for m in ("hydra", "mine-test", "dense", "d2bc"):
            add_run(store, m, m, f, sparsity=0.0 if m == "dense" else 0.5,
                    granularity="channel" if m == "d2bc" else "")
        t = report(store.path).tables["accuracy:synthetic:vgg-small:0.1"]
        assert list(t["method"]) == ["dense", "d2bc", "My pruner", "hydra"]
    finally:
        PRUNERS.remove("mine-test")


def test_any_attack_that_ran_is_a_column_labelled_by_its_metadata(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results.csv")
    rng = np.random.default_rng(0)
    clean = rng.random(50) < 0.9
    flags = {"clean": clean, "autoattack-fast": clean & (rng.random(50) < 0.5),
             "fmn-linf": clean & (rng.random(50) < 0.6)}
    add_run(store, "dense", "dense", flags)
    rep = report(store.path)
    t = rep.tables["accuracy:synthetic:vgg-small:0.1"]
    assert list(t.columns)[-3:] == ["APGD-CE + APGD-T %", "fmn-linf %", "worst case %"]
    row = json.loads(ResultsStore(store.path).rows()[0]["robust_acc"])
    assert t.iloc[0]["fmn-linf %"].startswith(f"{100 * row['fmn-linf']:.1f} [")
    assert "APGD-CE + APGD-T = `autoattack-fast` (not the standard AutoAttack)" in rep.text


def test_equal_cost_interpolates_in_log_cost_and_never_extrapolates() -> None:
    a = curve([CostPoint(1.0, 0.50, 0.45, 0.55), CostPoint(0.1, 0.40, 0.35, 0.45),
               CostPoint(0.01, 0.20, 0.15, 0.25)])
    pt, measured = at_cost(a, 10 ** -0.5)             # half-way between 0.1 and 1 in log cost
    assert not measured and pt.acc == pytest.approx(0.45) and pt.lo == pytest.approx(0.40)
    assert at_cost(a, 0.1)[1] and at_cost(a, 0.101)[0].acc == 0.40   # within 2 %: measured
    assert at_cost(a, 0.005) is None and at_cost(a, 1.5) is None       # outside: nothing
    masked = curve([CostPoint(1.0, 0.49, 0.4, 0.6), CostPoint(1.0, 0.43, 0.4, 0.5)])
    assert len(masked.points) == 1 and masked.points[0].acc == 0.49   # same cost: the best
    d2bc = curve([CostPoint(0.5, 0.5, 0.4, 0.6), CostPoint(0.1, 0.4, 0.3, 0.5)])
    assert common_costs([a, masked, d2bc]) == [1.0, 0.5, 0.1]
    assert common_costs([masked, d2bc]) == []          # no cost where both are defined
