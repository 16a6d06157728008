"""prunekit.bench.report / `prunekit report`: tables (Markdown, LaTeX), mean ± std, plots."""
from __future__ import annotations

from pathlib import Path

import pytest

from prunekit.bench.report import accuracy_table, load_results, report
from prunekit.bench.store import ResultsStore
from prunekit.cli import main


def _row(run_id: str, method: str, loss: str, sp: float, seed: int, aa: float, **kw) -> dict:
    return {"run_id": run_id, "status": "ok", "method": method, "loss": loss,
            "dataset": "fashion_mnist", "model": "vgg-small", "target_sparsity": sp,
            "seed": seed, "eps": 0.1, "n_eval": 100, "clean_acc": aa + 0.4, "pgd_acc": aa + 0.02,
            "apgd_acc": aa + 0.01, "aa_acc": aa, "worst_acc": aa, "weight_sparsity": sp,
            "macs_reduction": sp, "params": int(1000 * (1 - sp)) + 1,
            "macs": int(1e6 * (1 - sp)) + 10, **kw}


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    store = ResultsStore(tmp_path / "results.csv")
    for loss in ("trades", "mart"):
        store.append(_row(f"{loss}-dense", "dense", loss, 0.0, 0, 0.50))
        for m, base in (("d2bc", 0.45), ("hydra", 0.40)):
            for sp in (0.5, 0.9):
                for seed, d in ((0, 0.0), (1, 0.02)):
                    store.append(_row(f"{loss}-{m}-{sp}-{seed}", m, loss, sp, seed,
                                      base - sp / 10 + d))
    store.append({"run_id": "trades-admm-0.9-0", "status": "failed", "method": "admm",
                  "loss": "trades", "target_sparsity": 0.9,
                  "error": "RuntimeError: non-finite loss"})
    return store.path


def test_accuracy_table_mean_std_and_dense_once(csv_path: Path) -> None:
    df = load_results(csv_path)
    t = accuracy_table(df[df["status"] == "ok"])
    assert list(t.index) == [("trades", "dense"), ("trades", "d2bc"), ("trades", "hydra"),
                             ("mart", "dense"), ("mart", "d2bc"), ("mart", "hydra")]
    assert [c for c in t.columns] == [(sp, m) for sp in ("0%", "50%", "90%")
                                      for m in ("clean", "PGD", "APGD", "AA")]
    # d2bc at 90 %: AA 0.36 and 0.38 over two seeds -> 37.00 ± 1.41 (sample std)
    assert t.loc[("trades", "d2bc"), ("90%", "AA")] == "37.00 ± 1.41"
    assert t.loc[("trades", "dense"), ("0%", "AA")] == "50.00"        # one run: no ± part
    assert t.loc[("trades", "dense"), ("90%", "AA")] == ""


def test_report_markdown_failed_and_plots(csv_path: Path, tmp_path: Path) -> None:
    rep = report(csv_path, fmt="md", plots_dir=tmp_path / "plots")
    assert "| loss | method | 0% clean |" in rep.text
    assert "W-sparsity %" in rep.text and "MACs red. %" in rep.text
    assert "Failed runs (1):" in rep.text and "trades-admm-0.9-0: RuntimeError" in rep.text
    assert rep.n_ok == 18 and len(rep.failed) == 1
    names = sorted(p.name for p in rep.plots)
    assert names == ["acc_vs_sparsity_aa.png", "acc_vs_sparsity_apgd.png",
                     "acc_vs_sparsity_clean.png", "acc_vs_sparsity_pgd.png",
                     "robust_vs_macs.png"]
    for p in rep.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_report_latex(csv_path: Path) -> None:
    text = report(csv_path, fmt="latex").text
    assert r"\begin{tabular}" in text and r"\multicolumn{4}{c}{90\%}" in text
    assert r"37.00 $\pm$ 1.41" in text and "% Failed runs (1):" in text
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
