"""Per-example results (docs/results-schema.md): the npz format, written from an EvalResult, read
back and validated; example indices through Subsets and loaders; the bench runner writes the
file before the CSV row and names it in the ``examples`` column."""
from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from prunekit.eval import EvalResult, RobustnessEvaluator
from prunekit.eval.examples import (META_KEYS, ExamplesError, is_examples_file, read_examples,
                                    write_examples)

T, F = True, False
RECORD_KEYS = {"name", "label", "components", "norms", "box", "targeted", "standard"}


def _result(**kw) -> EvalResult:
    flags = {"clean": torch.tensor([T, T, T, F, T]), "pgd-20-2": torch.tensor([T, T, F, F, F]),
             "apgd-ce": torch.tensor([T, F, F, F, T]),
             "autoattack-fast": torch.tensor([T, F, F, F, F])}
    return EvalResult.from_flags(eps=0.1, norm="Linf",
                                 attacks=["pgd-20-2", "apgd-ce", "autoattack-fast"], flags=flags,
                                 seconds={}, index=torch.tensor([7, 3, 9, 0, 4]), seed=5,
                                 reused={"apgd-ce": "autoattack-fast"}, **kw)


def test_round_trip_in_the_documented_format(tmp_path: Path) -> None:
    res = _result()
    path = res.write_examples(tmp_path / "ex" / "run-1.npz", run_id="run-1", dataset="synth")
    with np.load(path, allow_pickle=False) as z:      # the raw file, as any reader sees it
        assert sorted(z.files) == ["cert_flags", "cert_names", "flags", "index", "meta", "names",
                                   "radii", "radius_names"]
        assert z["cert_flags"].shape == (0, 5) and z["radii"].shape == (0, 5)
        assert z["index"].dtype == np.int64 and z["index"].tolist() == [7, 3, 9, 0, 4]
        assert z["names"].tolist() == ["clean", "pgd-20-2", "apgd-ce", "autoattack-fast",
                                       "worst"]
        assert z["flags"].dtype == np.bool_ and z["flags"].shape == (5, 5)
        meta = json.loads(str(z["meta"][()]))
    assert set(meta) == set(META_KEYS) | {"certify"} and meta["format"] == 2
    assert meta["certify"] == []
    assert (meta["run_id"], meta["dataset"], meta["split"], meta["eps"], meta["norm"],
            meta["seed"]) == ("run-1", "synth", "test", 0.1, "Linf", 5)
    assert meta["reused"] == {"apgd-ce": "autoattack-fast"}
    assert [a["name"] for a in meta["attacks"]] == res.attacks
    assert all(set(a) == RECORD_KEYS for a in meta["attacks"])
    fast = meta["attacks"][2]
    assert fast["label"] == "APGD-CE + APGD-T" and fast["components"] == ["apgd-ce", "apgd-t"]
    assert fast["standard"] is False and fast["box"] == "white"
    ex = read_examples(path)
    assert ex.attacks == ("pgd-20-2", "apgd-ce", "autoattack-fast") and ex.n == 5
    for name in ("clean", *res.attacks, "worst"):
        assert ex[name].tolist() == res.flags[name].tolist()
    assert ex["worst"].tolist() == [T, F, F, F, F]
    assert EvalResult.read_examples(path).meta == ex.meta
    assert not list(path.parent.glob(".*.tmp"))      # no temporary file left


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    text = tmp_path / "results.csv"
    text.write_text("run_id,method\nx,y\n")
    single = tmp_path / "a.npy"
    np.save(single, np.zeros(3))
    other = tmp_path / "other.npz"
    np.savez(other, index=np.arange(3))
    for p in (text, single, other):
        with pytest.raises(ExamplesError) as exc:
            read_examples(p)
        assert "\n" not in str(exc.value) and str(p) in str(exc.value)
        assert not is_examples_file(p)
    with pytest.raises(FileNotFoundError):
        read_examples(tmp_path / "missing.npz")
    with pytest.raises(ExamplesError, match="flags"):  # inconsistent arrays: nothing written
        write_examples(tmp_path / "bad.npz", index=[0, 1], names=["clean", "worst"],
                       flags=np.zeros((2, 3), bool), meta={k: 0 for k in META_KEYS})
    assert not (tmp_path / "bad.npz").exists() and not list(tmp_path.glob(".*.tmp"))
    # a pickled object array is refused, never unpickled
    evil = tmp_path / "evil.npz"
    np.savez(evil, index=np.arange(1), names=np.array(["clean", "worst"]),
             flags=np.ones((2, 1), bool), meta=np.array({"format": 1}, dtype=object))
    with pytest.raises(ExamplesError):
        read_examples(evil)
    assert zipfile.is_zipfile(evil)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()


def test_indices_through_subsets_and_loaders(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    base = TensorDataset(torch.rand(20, 1, 3, 4, generator=g), torch.randint(0, 3, (20,),
                                                                             generator=g))
    sub = Subset(Subset(base, list(range(19, -1, -1))), [1, 4, 6, 8, 10, 12, 14])
    expect = [18, 15, 13, 11, 9, 7, 5]
    ev = RobustnessEvaluator(0.05, attacks=("pgd-2-1",), n_examples=6, batch_size=4)
    model = _tiny()
    assert ev.evaluate(model, sub).index.tolist() == expect[:6]
    assert ev.evaluate(model, DataLoader(sub, batch_size=3)).index.tolist() == expect[:6]
    xy = (base.tensors[0][:5], base.tensors[1][:5])
    assert ev.evaluate(model, xy).index.tolist() == [0, 1, 2, 3, 4]
    shuffled = ev.evaluate(model, DataLoader(sub, batch_size=3, shuffle=True))
    assert shuffled.index is None and "shuffled_loader" in shuffled.checks
    with pytest.raises(ExamplesError, match="indices unknown"):
        shuffled.write_examples(tmp_path / "x.npz", run_id="r", dataset="d")
    assert not (tmp_path / "x.npz").exists()


def test_bench_writes_examples_before_the_row(tmp_path: Path, monkeypatch) -> None:
    from prunekit.bench import runner
    from prunekit.bench.grid import load_grid
    from prunekit.bench.store import ResultsStore

    grid = load_grid(Path(__file__).resolve().parents[1] / "benchmarks" / "grids" /
                     "smoke.yaml")
    grid.axes = {"loss.name": ["trades"], "method": ["dense"], "sparsity": [0.0]}
    seen: list[bool] = []
    append = ResultsStore.append

    def spy(self, row):  # the file must exist when the row is written
        seen.append(bool(row.get("examples")) and (tmp_path / row["examples"]).is_file())
        return append(self, row)

    monkeypatch.setattr(ResultsStore, "append", spy)
    s = runner.run_grid(grid, tmp_path)
    assert s.ran_ok and seen == [True]
    (row,) = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert row["examples"] == f"examples/{row['run_id']}.npz"
    ex = read_examples(tmp_path / row["examples"])
    n = int(row["n_eval"])
    assert ex.index.tolist() == list(range(n)) and ex.meta["run_id"] == row["run_id"]
    assert ex.meta["dataset"] == row["dataset"] and ex.meta["eps"] == float(row["eps"])
    assert ex.names == ("clean", "pgd-5-1", "apgd-ce", "worst")
    acc = json.loads(row["robust_acc"])
    assert list(acc) == ["pgd-5-1", "apgd-ce"]
    assert float(row["clean_acc"]) == ex["clean"].mean()
    for col, name in (("pgd_acc", "pgd-5-1"), ("apgd_acc", "apgd-ce"), ("worst_acc", "worst")):
        assert float(row[col]) == ex[name].mean()
        if name in acc:
            assert acc[name] == float(row[col])
