"""Re-run the fault list of issue 20 through the real CLI and count what went wrong.

    nice -n 10 .venv/bin/python benchmarks/fault_list.py [--keep DIR]

Every case runs ``prunekit`` in a subprocess (the fake run function of tests/test_bench_fakes.py
stands in for training where a grid runs; the kill cases send real signals) and is classified:

- ``traceback``: "Traceback" on stderr;
- ``silent-wrong``: the command claimed something that did not happen (exit 0 or an ``ok``
  row / ``N ok`` summary where the case must fail, a lost run not named, a wrong hash);
- ``data loss``: a row missing without being reported, a fragment in the CSV, a duplicated row;
- ``ok``: refused in one line, or reported and recoverable, as docs/reliability.md promises.

Prints one line per case and the totals; exits 1 unless all three counts are 0.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))
from test_bad_inputs import CONFIG  # noqa: E402 - the tiny real config of the CLI tests
from test_bench_runner import GRID as FAKE_GRID, N_RUNS as N_FAKE  # noqa: E402 - the fake grid

Verdict = tuple[str, str]  # (class, detail)


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1", PRUNEKIT_PROGRESS="0")
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), e.get("PYTHONPATH")]))
    e.update(extra)
    return e


def cli(*args: str, fake: bool = False, limit: int | None = None, **extra: str
        ) -> subprocess.CompletedProcess:
    e = env(**({"PRUNEKIT_BENCH_RUN_FN": "test_bench_fakes:fake_run"} if fake else {}), **extra)

    def pre() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, "-m", "prunekit", *args], env=e, text=True,
                          capture_output=True, timeout=600, preexec_fn=pre)


def rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def refused(p: subprocess.CompletedProcess, needle: str) -> Verdict:
    """A one-line refusal (exit 2) mentioning ``needle``."""
    if "Traceback" in p.stderr:
        return "traceback", p.stderr.strip().splitlines()[-1]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    if p.returncode == 2 and len(lines) == 1 and needle in lines[0]:
        return "ok", lines[0]
    return "silent-wrong", f"rc {p.returncode}: {(lines or [p.stdout.strip()[-200:]])[-1]}"


def write(d: Path, name: str, obj: object) -> Path:
    path = d / name
    path.write_text(yaml.safe_dump(obj))
    return path


# -- cases --------------------------------------------------------------------------------------
def killed_worker(d: Path, sig: str) -> Verdict:
    g = write(d, "g.yaml", FAKE_GRID)
    p = cli("bench", str(g), "--out", str(d / "o"), "--jobs", "2", "--no-table", fake=True,
            PRUNEKIT_FAKE_DIE=str(d / "die"), PRUNEKIT_FAKE_DIE_SIG=sig)
    lost = (d / "die").read_text()
    n = len(rows(d / "o" / "results.csv"))
    if "Traceback" in p.stderr:
        return "traceback", p.stderr.strip().splitlines()[-1]
    if p.returncode == 0 or f"1 LOST ({lost}" not in p.stdout:
        return "data loss", f"rc {p.returncode}, {n} rows, lost run not named"
    again = cli("bench", str(g), "--out", str(d / "o"), "--no-table", fake=True)
    if again.returncode or len(rows(d / "o" / "results.csv")) != N_FAKE:
        return "data loss", "the lost run was not re-run"
    return "ok", f"named as LOST, re-run completes the grid ({n} + 1 rows)"


def killed_parent(d: Path, sig: int) -> Verdict:
    g = write(d, "g.yaml", FAKE_GRID)
    proc = subprocess.Popen([sys.executable, "-m", "prunekit", "bench", str(g), "--out",
                             str(d / "o"), "--jobs", "2", "--no-table"],
                            env=env(PRUNEKIT_BENCH_RUN_FN="test_bench_fakes:fake_run",
                                    PRUNEKIT_FAKE_BLOCK="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    pids = []
    for line in proc.stdout:
        if "fake run: blocking pid" in line:
            pids.append(int(line.rsplit(" ", 1)[1]))
            if len(pids) == 2:
                break
    os.kill(proc.pid, sig)
    proc.communicate(timeout=120)
    alive = []
    for pid in pids:
        fd = os.pidfd_open(pid) if _alive(pid) else None
        if fd is not None:
            import select
            if not select.select([fd], [], [], 60)[0]:
                alive.append(pid)
                os.kill(pid, signal.SIGKILL)
            os.close(fd)
    if alive:
        return "silent-wrong", f"orphans {alive} outlived the parent"
    return "ok", f"both workers ended with the parent; {len(rows(d / 'o' / 'results.csv'))} rows"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def serial_twice(d: Path) -> Verdict:
    g = write(d, "g.yaml", FAKE_GRID)
    base = [sys.executable, "-m", "prunekit", "bench", str(g), "--out", str(d / "o"),
            "--no-table"]
    e = env(PRUNEKIT_BENCH_RUN_FN="test_bench_fakes:fake_run")
    ps = [subprocess.Popen(base, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in ps]
    claimed = sum(int(o.split("done: ")[1].split(" ok")[0]) for o in outs if "done: " in o)
    n = len(rows(d / "o" / "results.csv"))
    calls = [(r / "calls.txt").read_text() for r in (d / "o" / "runs").iterdir()]
    if claimed != n or set(calls) != {"1"}:
        return "silent-wrong", f"summaries claim {claimed} ok for {n} rows; calls {calls}"
    return "ok", f"3 serial benches: summaries claim {claimed} ok for {n} rows, no run twice"


def nan_weights(d: Path) -> Verdict:
    code = ("import torch, prunekit; from prunekit.checkpoint import save_model\n"
            "torch.manual_seed(0)\n"
            "m = prunekit.MODELS.build('vgg-small', num_classes=10, in_channels=3, width=0.25)\n"
            "next(p for p in m.parameters() if p.dim() == 4).data.view(-1)[0] = float('nan')\n"
            f"save_model({str(d / 'nan.pt')!r}, m, meta={{'dataset': 'synthetic', "
            "'eps': 8/255}, input_shape=(3, 32, 32))\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env())
    p = cli("eval", str(d / "nan.pt"), "--n", "8", "--attacks", "pgd-2-1", "--csv",
            str(d / "r.csv"))
    if rows(d / "r.csv"):
        return "silent-wrong", "a row was written for a NaN model"
    return refused(p, "non-finite weights")


def copied_examples(d: Path) -> Verdict:
    import numpy as np
    sys.path.insert(0, str(ROOT))
    from prunekit.bench.examples import load_per_example
    from prunekit.eval.examples import write_examples
    meta = {"run_id": "run-a", "dataset": "synthetic", "split": "test", "eps": 0.1,
            "norm": "Linf", "seed": 0, "attacks": [], "reused": {}}
    write_examples(d / "examples" / "run-b.npz", index=np.arange(4),
                   names=["clean", "worst"], flags=np.ones((2, 4), bool), meta=meta)
    if load_per_example(d, "examples/run-b.npz", "run-b") is not None:
        return "silent-wrong", "run-a's file paired as run-b's"
    return "ok", "not paired, with a warning naming both runs"


def hashes(d: Path) -> Verdict:
    g = write(d, "g.yaml", {"name": "h", "base": CONFIG, "axes": {"seed": [0]}})
    p = cli("bench", str(g), "--out", str(d / "o"), "--no-table")
    if p.returncode:
        return "traceback" if "Traceback" in p.stderr else "silent-wrong", p.stderr[-200:]
    r = rows(d / "o" / "results.csv")[0]
    cache = d / "o" / "cache" / "pretrain" / r["pretrain_hash"]
    meta_code = ("import sys, json; from prunekit.checkpoint import read_model_meta; "
                 "print(read_model_meta(sys.argv[1])['config_hash'])")
    meta = subprocess.run([sys.executable, "-c", meta_code,
                           str(d / "o" / "runs" / r["run_id"] / "model.pt")],
                          capture_output=True, text=True, env=env()).stdout.strip()
    if not cache.is_dir() or meta != r["config_hash"]:
        return "silent-wrong", f"cache {cache.name} exists={cache.is_dir()}, meta {meta} vs " \
                               f"csv {r['config_hash']}"
    return "ok", "pretrain_hash names the cache entry, config_hash the model meta"


def short_write(d: Path) -> Verdict:
    g = write(d, "g.yaml", FAKE_GRID)
    first = cli("bench", str(g), "--out", str(d / "o"), "--no-table", "--only",
                "method=dense", "--only", "loss.name=trades", fake=True)
    size = (d / "o" / "results.csv").stat().st_size
    assert first.returncode == 0, first.stderr
    p = cli("bench", str(g), "--out", str(d / "o"), "--no-table", fake=True, limit=size + 58)
    data = (d / "o" / "results.csv").read_bytes()
    if not data.endswith(b"\n") or len(data) != size:
        return "data loss", f"a {len(data) - size}-byte fragment was left in the CSV"
    if p.returncode == 0 or " ok" in p.stdout.split("done:")[-1][:6]:
        return "silent-wrong", "a failed write reported ok"
    return refused(p, "ulimit -f")


def immutable(d: Path) -> Verdict:
    g = write(d, "g.yaml", FAKE_GRID)
    cli("bench", str(g), "--out", str(d / "o"), "--no-table", "--only", "method=dense",
        "--only", "loss.name=trades", fake=True)
    csv_path = d / "o" / "results.csv"
    if subprocess.run(["chattr", "+i", str(csv_path)], capture_output=True).returncode:
        return "ok", "skipped: chattr +i not available"
    try:
        p = cli("bench", str(g), "--out", str(d / "o"), "--no-table", fake=True)
    finally:
        subprocess.run(["chattr", "-i", str(csv_path)])
    if (d / "o" / "runs").exists() and len(list((d / "o" / "runs").iterdir())) > 1:
        return "silent-wrong", "a run was computed before the CSV was found unwritable"
    return refused(p, "cannot be appended to")


def damaged_run_file(d: Path, which: str) -> Verdict:
    g = write(d, "g.yaml", {"name": "h", "base": {**CONFIG, "finetune": {"epochs": 1}},
                            "axes": {"seed": [0]}})
    first = cli("bench", str(g), "--out", str(d / "o"), "--no-table")
    rid = rows(d / "o" / "results.csv")[0]["run_id"]
    shutil.rmtree(d / "o" / "examples")
    (d / "o" / "results.csv").unlink()
    if which == "ckpt":
        target = d / "o" / "runs" / rid / "finetune" / "ckpt.pt"
        target.write_bytes(target.read_bytes()[:100])
    else:
        target = next((d / "o" / "cache" / "pretrain").glob("*/done.json"))
        target.write_text(which)
    p = cli("bench", str(g), "--out", str(d / "o"), "--no-table")
    if "Traceback" in p.stderr:
        return "traceback", p.stderr.strip().splitlines()[-1]
    if first.returncode or p.returncode or len(rows(d / "o" / "results.csv")) != 1:
        return "silent-wrong", f"re-run did not heal: rc {p.returncode} {p.stdout[-200:]}"
    return "ok", f"{target.name} ({which}) dropped with a log line, run healed"


def bad_grid(d: Path, change: dict, needle: str, dry: bool = True) -> Verdict:
    g = write(d, "g.yaml", {"name": "t", "base": CONFIG, "axes": {"seed": [0]}, **change})
    return refused(cli("bench", str(g), "--out", str(d / "o"),
                       *(["--dry-run"] if dry else [])), needle)


def bad_train(d: Path, setting: str, needle: str) -> Verdict:
    c = write(d, "c.yaml", CONFIG)
    p = cli("train", "--config", str(c), "--workdir", str(d / "w"), "--set", setting)
    if p.returncode == 2 and (d / "w").exists():
        return "silent-wrong", "refused only after training started"
    return refused(p, needle)


def meta_list(d: Path) -> Verdict:
    code = ("import torch, prunekit; from prunekit.checkpoint import save_model\n"
            "m = prunekit.MODELS.build('vgg-small', num_classes=10, in_channels=3, width=0.25)\n"
            f"p = {str(d / 'm.pt')!r}\n"
            "save_model(p, m, meta={'dataset': 'synthetic'}, input_shape=(3, 32, 32))\n"
            "b = torch.load(p, weights_only=True); b['meta'] = '[1, 2]'; torch.save(b, p)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env())
    return refused(cli("eval", str(d / "m.pt"), "--n", "8"), "not an object")


def cases() -> list[tuple[str, Callable[[Path], Verdict]]]:
    base = CONFIG
    return [
        ("1 --jobs worker SIGKILL", lambda d: killed_worker(d, "KILL")),
        ("1 --jobs worker SIGTERM", lambda d: killed_worker(d, "TERM")),
        ("2 --jobs parent SIGKILL", lambda d: killed_parent(d, signal.SIGKILL)),
        ("2 --jobs parent SIGTERM", lambda d: killed_parent(d, signal.SIGTERM)),
        ("3 three serial benches, one --out", serial_twice),
        ("4 NaN weights at eval", nan_weights),
        ("5 examples file of another run", copied_examples),
        ("6 provenance hashes", hashes),
        ("7 short write (ulimit -f)", short_write),
        ("rules: [{where: 3}]", lambda d: bad_grid(d, {"rules": [{"where": 3, "set": {}}]},
                                                   "each rule must be")),
        ("bench: {format: html} at --dry-run",
         lambda d: bad_grid(d, {"bench": {"format": "html"}}, "bench format")),
        ("model meta a JSON list", meta_list),
        ("train num_classes: 1", lambda d: bad_train(d, "data.num_classes=1", "num_classes")),
        ("train input_shape [3, 0, 0]",
         lambda d: bad_train(d, "data.input_shape=[3,0,0]", "input_shape")),
        ("train size: 0", lambda d: bad_train(d, "data.size=0", "data.size")),
        ("grid eval.attacks=[] at --dry-run", lambda d: bad_grid(
            d, {"base": {**base, "eval": {**base["eval"], "attacks": []}}}, "eval.attacks")),
        ("grid seed beyond int64 at --dry-run",
         lambda d: bad_grid(d, {"axes": {"seed": [2 ** 64]}}, "seed must be")),
        ("grid device=cuda on CPU at --dry-run",
         lambda d: bad_grid(d, {"base": {**base, "device": "cuda"}}, "CUDA is not available")),
        ("grid num_classes: 1 at --dry-run", lambda d: bad_grid(
            d, {"base": {**base, "data": {**base["data"], "num_classes": 1}}}, "num_classes")),
        ("done.json is []", lambda d: damaged_run_file(d, "[]")),
        ("done.json is null", lambda d: damaged_run_file(d, "null")),
        ("truncated finetune/ckpt.pt in a run dir", lambda d: damaged_run_file(d, "ckpt")),
        ("immutable results.csv", immutable),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", default=None, help="keep the cases' folders under DIR")
    args = ap.parse_args()
    top = Path(args.keep or tempfile.mkdtemp(prefix="prunekit-faults-"))
    counts = {"ok": 0, "traceback": 0, "silent-wrong": 0, "data loss": 0}
    for i, (name, fn) in enumerate(cases()):
        d = top / f"case{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        try:
            kind, detail = fn(d)
        except Exception as exc:  # noqa: BLE001 - the harness itself: count it, go on
            kind, detail = "traceback", f"harness: {type(exc).__name__}: {exc}"
        counts[kind] += 1
        print(f"{kind:12s} {name}: {detail}", flush=True)
    if not args.keep:
        shutil.rmtree(top, ignore_errors=True)
    print(f"{len(cases())} cases: {counts['traceback']} tracebacks, {counts['silent-wrong']} "
          f"silent-wrong, {counts['data loss']} data loss, {counts['ok']} ok")
    return 0 if counts["ok"] == len(cases()) else 1


if __name__ == "__main__":
    sys.exit(main())
