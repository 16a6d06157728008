"""Bad input through the real CLI (issue 11): a table of commands and the exact one-line error
each must give -- exit status 2, one line ``prunekit CMD: error: ...`` on stderr, no traceback,
never torch's ``weights_only=False`` advice, and no existing file changed (nothing overwritten by
a file of another kind, nothing half-written).

In-process through ``prunekit.cli.main`` (the console script's function); a few cases also run
the installed ``prunekit`` script in a subprocess. ``…`` in an expected line stands for text that
comes from torch and varies between its versions.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import prunekit
from prunekit.bench.store import _V1_COLUMNS, ResultsStore
from prunekit.checkpoint import save_model
from prunekit.cli import main

PRUNEKIT = Path(sys.executable).with_name("prunekit")
CONFIG = {"name": "tiny", "device": "cpu",
          "data": {"dataset": "synthetic", "train_subset": 32, "batch_size": 32},
          "model": {"name": "vgg-small", "width": 0.25}, "loss": {"steps": 1},
          "pretrain": {"epochs": 1, "lr": 0.05, "schedule": "constant"},
          "prune": {"epochs": 0}, "finetune": {"epochs": 0},
          "eval": {"attacks": ["pgd-2-1"], "n_examples": 8, "batch_size": 8}}
GRID = {"name": "tiny", "base": CONFIG, "axes": {"seed": [0]}}


class Booby:
    """Unpickling this would create the file ``target`` (arbitrary code execution)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _model(in_channels: int, dataset: str, shape: tuple[int, int, int], path: Path) -> None:
    torch.manual_seed(0)
    m = prunekit.MODELS.build("vgg-small", num_classes=10, in_channels=in_channels, width=0.25)
    save_model(path, m, meta={"dataset": dataset, "eps": 8 / 255, "method": "dense"},
               input_shape=shape)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every kind of file a user might point a command at, in one folder ``dir``."""
    d = tmp_path_factory.mktemp("bad")
    f = {"dir": d}
    f["model"] = d / "model.pt"
    _model(3, "synthetic", (3, 32, 32), f["model"])
    f["fm_model"] = d / "fm_model.pt"
    _model(1, "fashion_mnist", (1, 28, 28), f["fm_model"])
    f["csv"] = d / "results.csv"
    ResultsStore(f["csv"]).append({"run_id": "r1", "status": "ok", "method": "dense",
                                   "dataset": "synthetic", "clean_acc": 0.5})
    f["v1"] = d / "v1.csv"
    f["v1"].write_text(",".join(_V1_COLUMNS) + "\n")
    f["wrong"] = d / "wrong.csv"
    f["wrong"].write_text("a,b\n1,2\n")
    f["text"] = d / "notes.txt"
    f["text"].write_text("my notes\n")
    f["trunc"] = d / "trunc.pt"
    f["trunc"].write_bytes(f["model"].read_bytes()[:2000])
    f["state_dict"] = d / "state_dict.pt"
    torch.save(prunekit.MODELS.build("vgg-small", width=0.25).state_dict(), f["state_dict"])
    f["tensor"] = d / "tensor.pt"
    torch.save(torch.zeros(3), f["tensor"])
    f["pwned"] = d / "pwned"
    f["evil"] = d / "evil.pt"
    torch.save({"model": Booby(str(f["pwned"]))}, f["evil"])
    f["evil_pkl"] = d / "evil.pkl"
    f["evil_pkl"].write_bytes(pickle.dumps(Booby(str(f["pwned"]))))
    f["binary"] = d / "data.bin"
    f["binary"].write_bytes(bytes(range(256)) * 8)
    f["folder"] = d / "folder"
    f["folder"].mkdir()
    (f["folder"] / "keep.txt").write_text("x\n")
    f["config"] = d / "config.yaml"
    f["config"].write_text(yaml.safe_dump(CONFIG))
    f["grid"] = d / "grid.yaml"
    f["grid"].write_text(yaml.safe_dump(GRID))
    f["foreign"] = d / "foreign"
    f["foreign"].mkdir()
    shutil.copy(f["csv"], f["foreign"] / "model.pt")   # someone's file named model.pt
    f["badout"] = d / "badout"
    f["badout"].mkdir()
    shutil.copy(f["wrong"], f["badout"] / "results.csv")
    return f


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for root, dirs, names in os.walk(folder):
        for n in dirs + names:
            p = Path(root, n)
            out[str(p.relative_to(folder))] = (
                "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
    return out


EVAL = ["eval", "{model}", "--attacks", "pgd-2-1", "--n", "8"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

#: (id, argv, the exact stderr line); {name} is a path from the ``files`` fixture
CASES = [
    # eval: outputs that are files of another kind are refused before anything runs
    ("eval-state-is-results-csv", EVAL + ["--state", "{csv}"],
     "prunekit eval: error: refusing to overwrite {csv} (--state): it is a results CSV, not an "
     "evaluation state; give another path or move the file away"),
    ("eval-state-is-model", EVAL + ["--state", "{fm_model}"],
     "prunekit eval: error: refusing to overwrite {fm_model} (--state): it is a torch checkpoint "
     "(zip archive), not an evaluation state; give another path or move the file away"),
    ("eval-state-is-text", EVAL + ["--state", "{text}"],
     "prunekit eval: error: refusing to overwrite {text} (--state): it is a text file, not an "
     "evaluation state; give another path or move the file away"),
    ("eval-state-is-dir", EVAL + ["--state", "{folder}"],
     "prunekit eval: error: --state {folder} is a directory; give a file path"),
    ("eval-csv-wrong-header", EVAL + ["--csv", "{wrong}"],
     "prunekit eval: error: {wrong}: header does not match the results schema "
     "(docs/results-schema.md); write to a new file (another --csv, or a new bench --out "
     "directory)"),
    ("eval-csv-v1", EVAL + ["--csv", "{v1}"],
     "prunekit eval: error: {v1} has the old v1 header (docs/results-schema.md): it is read but "
     "never appended to; write to a new file (another --csv, or a new bench --out directory)"),
    ("eval-csv-binary", EVAL + ["--csv", "{binary}"],
     "prunekit eval: error: {binary} is not a results CSV (it holds binary data); give a "
     "results.csv written by prunekit bench or prunekit eval --csv"),
    ("eval-csv-is-dir", EVAL + ["--csv", "{folder}"],
     "prunekit eval: error: {folder} is a directory, not a results CSV; give the results.csv "
     "file inside it"),
    ("eval-examples-is-csv", EVAL + ["--examples", "{csv}"],
     "prunekit eval: error: refusing to overwrite {csv} (--examples): it is a results CSV, not "
     "a prunekit per-example file; give another path or move the file away"),
    # eval: files that are not prunekit models
    ("eval-text-checkpoint", ["eval", "{text}", "--n", "8"],
     "prunekit eval: error: {text} is not a readable torch checkpoint: it is a text file; give "
     "a model file written by prunekit"),
    ("eval-truncated-checkpoint", ["eval", "{trunc}", "--n", "8"],
     "prunekit eval: error: {trunc} is not a readable torch checkpoint: it is truncated or "
     "corrupt (…); re-create or re-copy it"),
    ("eval-state-dict", ["eval", "{state_dict}", "--n", "8"],
     "prunekit eval: error: {state_dict} is a bare state_dict, not a prunekit model file (format "
     "prunekit.model/1, written by prunekit train or prunekit.checkpoint.save_model, which also "
     "stores the model spec)"),
    ("eval-tensor-file", ["eval", "{tensor}", "--n", "8"],
     "prunekit eval: error: {tensor} is a torch Tensor, not a prunekit model file (format "
     "prunekit.model/1, written by prunekit train or prunekit.checkpoint.save_model, which also "
     "stores the model spec)"),
    ("eval-malicious-torch-file", ["eval", "{evil}", "--n", "8"],
     "prunekit eval: error: refusing to load {evil}: it needs arbitrary unpickling (…), which "
     "prunekit never does; only tensors and plain containers are loaded (save models with "
     "prunekit.checkpoint.save_model)"),
    ("eval-malicious-pickle", ["eval", "{evil_pkl}", "--n", "8"],
     "prunekit eval: error: refusing to load {evil_pkl}: it needs arbitrary unpickling (…), "
     "which prunekit never does; only tensors and plain containers are loaded (save models with "
     "prunekit.checkpoint.save_model)"),
    ("eval-directory-checkpoint", ["eval", "{folder}", "--n", "8"],
     "prunekit eval: error: {folder} is a directory, not a checkpoint file"),
    ("eval-missing-checkpoint", ["eval", "{dir}/nope.pt", "--n", "8"],
     "prunekit eval: error: checkpoint {dir}/nope.pt does not exist"),
    ("eval-input-shape", ["eval", "{fm_model}", "--dataset", "synthetic", "--n", "8"],
     "prunekit eval: error: {fm_model} expects inputs of shape 1x28x28 (it was trained on "
     "fashion_mnist) but synthetic gives 3x32x32; evaluate it on a dataset of its input shape "
     "(--dataset)"),
    # eval: arguments
    ("eval-n-0", EVAL[:-2] + ["--n", "0"],
     "prunekit eval: error: argument --n: must be >= 1 or 'all' (every example), got 0 (see "
     "prunekit eval --help)"),
    ("eval-eps-inf", EVAL + ["--eps", "inf"],
     "prunekit eval: error: argument --eps: must be a finite number >= 0, got inf (see prunekit "
     "eval --help)"),
    ("eval-eps-nan", EVAL + ["--eps", "nan"],
     "prunekit eval: error: argument --eps: must be a finite number >= 0, got nan (see prunekit "
     "eval --help)"),
    ("eval-device-tpu", EVAL + ["--device", "tpu"],
     "prunekit eval: error: argument --device: must be auto, cpu, cuda or cuda:N, got 'tpu' "
     "(see prunekit eval --help)"),
    ("eval-device-cuda", EVAL + ["--device", "cuda"],
     "prunekit eval: error: argument --device: cuda: CUDA is not available on this machine; use "
     "cpu (or auto) (see prunekit eval --help)"),
    ("eval-device-cuda-1", EVAL + ["--device", "cuda:1"],
     "prunekit eval: error: argument --device: cuda:1: CUDA is not available on this machine; "
     "use cpu (or auto) (see prunekit eval --help)"),
    ("eval-batch-size-0", EVAL + ["--batch-size", "0"],
     "prunekit eval: error: argument --batch-size: must be >= 1, got 0 (see prunekit eval "
     "--help)"),
    # train: configs
    ("train-binary-config", ["train", "--config", "{binary}"],
     "prunekit train: error: {binary} is not a YAML text file (it holds binary data); give a "
     "YAML file"),
    ("train-directory-config", ["train", "--config", "{folder}"],
     "prunekit train: error: {folder} is a directory; give a YAML file"),
    ("train-missing-config", ["train", "--config", "{dir}/nope.yaml"],
     "prunekit train: error: config file not found: {dir}/nope.yaml"),
    ("train-nan-lr", ["train", "--config", "{config}", "--set", "pretrain.lr=.nan"],
     "prunekit train: error: config field 'pretrain.lr' must be a finite number, got nan"),
    ("train-inf-lr", ["train", "--config", "{config}", "--set", "pretrain.lr=.inf"],
     "prunekit train: error: config field 'pretrain.lr' must be a finite number, got inf"),
    ("train-inf-eps", ["train", "--config", "{config}", "--set", "loss.eps=.inf"],
     "prunekit train: error: config field 'loss.eps' must be a finite number, got inf"),
    ("train-nan-eval-eps", ["train", "--config", "{config}", "--set", "eval.eps=.nan"],
     "prunekit train: error: config field 'eval.eps' must be a finite number, got nan"),
    ("train-nan-method-option", ["train", "--config", "{config}", "--set", "method=d2bc",
                                 "--set", "d2bc.gamma=.nan"],
     "prunekit train: error: config field 'd2bc.gamma' must be a finite number, got nan"),
    ("train-nan-stage-override", ["train", "--config", "{config}", "--set", "method=hydra",
                                  "--set", "hydra.finetune.lr=.nan"],
     "prunekit train: error: config field 'hydra.finetune.lr' must be a finite number, got nan"),
    ("train-workdir-is-file", ["train", "--config", "{config}", "--workdir", "{text}"],
     "prunekit train: error: --workdir {text} is a text file, not a directory; give a directory "
     "path"),
    ("train-foreign-workdir", ["train", "--config", "{config}", "--workdir", "{foreign}"],
     "prunekit train: error: work directory {foreign} holds model.pt but no run.json: it is not "
     "a prunekit work directory and its files would be overwritten; use another --workdir"),
    # bench
    ("bench-out-is-file", ["bench", "{grid}", "--out", "{text}"],
     "prunekit bench: error: --out {text} is a text file, not a directory; give a directory "
     "path"),
    ("bench-out-under-file", ["bench", "{grid}", "--out", "{text}/sub"],
     "prunekit bench: error: cannot create --out {text}/sub: {text} is a file; give a directory "
     "path"),
    ("bench-out-foreign-csv", ["bench", "{grid}", "--out", "{badout}"],
     "prunekit bench: error: {badout}/results.csv is not a prunekit results CSV: its header does "
     "not match the results schema (docs/results-schema.md); give a results.csv written by "
     "prunekit bench or prunekit eval --csv"),
    ("bench-binary-grid", ["bench", "{binary}", "--out", "{dir}/never"],
     "prunekit bench: error: {binary} is not a YAML text file (it holds binary data); give a "
     "YAML file"),
    ("bench-directory-grid", ["bench", "{folder}", "--out", "{dir}/never"],
     "prunekit bench: error: {folder} is a directory; give a YAML file"),
    ("bench-threads-0", ["bench", "{grid}", "--out", "{dir}/never", "--threads", "0"],
     "prunekit bench: error: argument --threads: must be >= 1, got 0 (see prunekit bench "
     "--help)"),
    # report
    ("report-wrong-header", ["report", "{wrong}"],
     "prunekit report: error: {wrong} is not a prunekit results CSV: its header does not match "
     "the results schema (docs/results-schema.md); give a results.csv written by prunekit bench "
     "or prunekit eval --csv"),
    ("report-binary", ["report", "{binary}"],
     "prunekit report: error: {binary} is not a results CSV (it holds binary data); give a "
     "results.csv written by prunekit bench or prunekit eval --csv"),
    ("report-directory", ["report", "{folder}"],
     "prunekit report: error: {folder} is a directory, not a results CSV; give the results.csv "
     "file inside it"),
    ("report-missing", ["report", "{dir}/nope.csv"],
     "prunekit report: error: results file not found: {dir}/nope.csv"),
    ("report-plots-is-file", ["report", "{csv}", "--plots", "{text}"],
     "prunekit report: error: --plots {text} is a text file, not a directory; give a directory "
     "path"),
    ("report-out-is-input", ["report", "{csv}", "--out", "{csv}"],
     "prunekit report: error: refusing to overwrite {csv} (--out): it is a results CSV, not a "
     "report (text); give another path or move the file away"),
    ("report-out-is-model", ["report", "{csv}", "--out", "{model}"],
     "prunekit report: error: refusing to overwrite {model} (--out): it is a torch checkpoint "
     "(zip archive), not a report (text); give another path or move the file away"),
    ("report-out-is-dir", ["report", "{csv}", "--out", "{folder}"],
     "prunekit report: error: --out {folder} is a directory; give a file path"),
]


def _fill(text: str, files: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in files.items()})


def _pattern(expected: str) -> str:
    return ".*".join(re.escape(part) for part in expected.split("…"))


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        return int(exc.code)


EXPECTED = {case_id: expected for case_id, _, expected in CASES}


@pytest.mark.parametrize("argv, expected", [
    pytest.param(argv, expected, id=case_id,
                 marks=[NO_CUDA] if case_id.startswith("eval-device-cuda") else [])
    for case_id, argv, expected in CASES])
def test_bad_input_is_one_line_and_touches_nothing(files, argv, expected, capsys) -> None:
    before = _snapshot(files["dir"])
    rc = _run([_fill(a, files) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.fullmatch(_pattern(_fill(expected, files)), lines[0]), lines[0]
    assert "Traceback" not in out + err and "weights_only" not in err
    assert _snapshot(files["dir"]) == before          # nothing written, nothing overwritten
    assert not files["pwned"].exists()                 # no pickle was executed


def test_the_installed_script_gives_the_same_single_lines(files) -> None:
    """The console script (a subprocess): same one line, exit 2, no traceback."""
    # (each subprocess imports torch: ~3 s; two cases, one of which makes torch warn)
    for argv, case_id in ((EVAL + ["--state", "{csv}"], "eval-state-is-results-csv"),
                          (["eval", "{evil_pkl}", "--n", "8"], "eval-malicious-pickle")):
        expected = EXPECTED[case_id]
        before = _snapshot(files["dir"])
        proc = subprocess.run([str(PRUNEKIT), *[_fill(a, files) for a in argv]],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert re.fullmatch(_pattern(_fill(expected, files)), proc.stderr.strip()), proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert _snapshot(files["dir"]) == before


# -- reading writes nothing ----------------------------------------------------------------------
def _read_only(folder: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``prunekit ARGV`` with ``folder`` truly read-only: ``chmod 555`` for a normal user;
    for root (whom permissions do not stop) a read-only bind mount in a private mount namespace.
    """
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run([str(PRUNEKIT), *argv], capture_output=True, text=True,
                                  timeout=120)
        finally:
            folder.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a directory read-only")
    script = ('mount --bind -o ro "$0" "$0" || exit 97; exec "$@"')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, str(folder), str(PRUNEKIT),
                           *argv], capture_output=True, text=True, timeout=120)
    if proc.returncode == 97 or "unshare failed" in proc.stderr:
        pytest.skip("cannot create a read-only bind mount here")
    return proc


def test_report_works_on_a_read_only_directory(tmp_path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    csv_path = shared / "results.csv"
    ResultsStore(csv_path).append({"run_id": "r1", "status": "ok", "method": "dense",
                                   "loss": "trades", "dataset": "synthetic", "model": "vgg-small",
                                   "target_sparsity": 0.0, "clean_acc": 0.5, "pgd_acc": 0.25,
                                   "worst_acc": 0.25, "n_eval": 8, "eps": 0.03})
    (shared / "results.csv.lock").unlink(missing_ok=True)
    with open(csv_path, "a") as fh:
        fh.write("a hand-edited,line\n")         # malformed: cannot be quarantined here
    before = _snapshot(shared)
    proc = _read_only(shared, ["report", str(csv_path)])
    assert proc.returncode == 0, proc.stderr
    assert "| trades | dense |" in proc.stdout and "Traceback" not in proc.stderr
    assert "not writable" in proc.stderr and "1 finished runs" in proc.stderr
    assert _snapshot(shared) == before             # no lock file, no quarantine, no rewrite


def test_dry_run_creates_no_lock_file(files, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(files["csv"], out / "results.csv")
    before = _snapshot(out)
    assert main(["bench", str(files["grid"]), "--out", str(out), "--dry-run"]) == 0
    assert "pending" in capsys.readouterr().out
    assert _snapshot(out) == before
    assert main(["bench", str(files["grid"]), "--out", str(tmp_path / "new"), "--dry-run"]) == 0
    assert not (tmp_path / "new").exists()


def _no_autoattack(cfg, workdir, cache_dir, device):
    """A run whose evaluation had no AutoAttack: aa_acc is NaN, as EvalResult.to_row gives."""
    return {"clean_acc": 0.5, "pgd_acc": 0.25, "aa_acc": float("nan"), "eps": 0.03}


def test_progress_lines_never_print_nan(files, tmp_path) -> None:
    from prunekit.bench.runner import run_grid

    lines: list[str] = []
    s = run_grid(files["grid"], tmp_path / "out", run_fn=_no_autoattack, progress=lines.append)
    assert len(s.ran_ok) == 1
    done = [ln for ln in lines if ": ok in " in ln]
    assert done and done[0].endswith("(clean 0.500, pgd 0.250)") and "nan" not in done[0]
