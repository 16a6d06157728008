"""The CPU fast path on the demo recipe: epoch time and final accuracy of fp32, channels_last and
bf16 autocast (issue 15, item 1; results in docs/training.md).

1. **Epoch time** of the demo's TRADES pretraining (Fashion-MNIST, 4,000 images, vgg-small
   x0.5, TRADES 3 steps, batch 128) for each setting, interleaved (setting order rotated every
   repetition) so that the machine's load hits every setting alike; ratios to fp32 per
   repetition, then their median.
2. **Final accuracy**: the demo recipe (pretrain 4 epochs, then d2bc at 90 %: prune 1, fine-tune
   1) trained with each setting, the dense and the d2bc model evaluated **in fp32** (clean and
   APGD-CE + APGD-T, ``autoattack-fast``) on the first ``--n-eval`` test images. Wilson 95 %
   intervals per accuracy and an exact McNemar test between each setting and fp32 on the same
   examples (statsmodels).
3. **The training-time attack itself**: on the fp32-trained dense model, the TRADES attack of
   the recipe and PGD-10 run under bf16 autocast vs fp32, scored in fp32 on the same images.

Usage (about 30 min of one core on a quiet machine)::

    nice -n 10 python benchmarks/perf/cpu_fast_path.py --out /tmp/fast_path.json

Prints Markdown tables; ``--out`` also writes every number as JSON.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import prunekit
from prunekit.attacks import PGD
from prunekit.attacks.precision import training_attack_autocast
from prunekit.bench.grid import load_grid
from prunekit.config import RunConfig, set_dotted
from prunekit.eval import RobustnessEvaluator
from prunekit.train import (build_loader, build_test_set, build_train_set, derive_seed, fit,
                            make_optimizer, make_scheduler, run_pipeline, seed_everything)
from prunekit.train.env import bf16_support

DEMO = Path(__file__).resolve().parents[1] / "grids" / "demo.yaml"
#: name -> (amp, channels_last, amp_attack)
SETTINGS = {"fp32": (False, False, True), "channels_last": (False, True, True),
            "bf16": (True, True, True), "bf16, fp32 attack": (True, True, False)}
#: accuracy runs: name -> (precision setting, overrides); "fp32, seed 1" is the noise reference:
#: two independently trained models differ on many examples whatever the precision, so a
#: setting's difference to fp32 is judged against the seed-to-seed difference
ACCURACY_SETTINGS = {"fp32": ("fp32", {}), "fp32, seed 1": ("fp32", {"seed": 1}),
                     "channels_last": ("channels_last", {}), "bf16": ("bf16", {})}


#: extra dotted overrides for every config (``--set``, e.g. a smaller subset for a dry run)
OVERRIDES: dict[str, Any] = {}


def demo_config(setting: str, **overrides: Any) -> RunConfig:
    """The demo grid's base recipe with this setting's precision (and ``overrides``)."""
    d = copy.deepcopy(load_grid(DEMO).base)
    amp, cl, _ = SETTINGS[setting]
    for key, value in {"amp": amp, "channels_last": cl, **OVERRIDES, **overrides}.items():
        set_dotted(d, key, value)
    return RunConfig.from_dict(d)


# -- 1. epoch time ------------------------------------------------------------------------------
def epoch_times(reps: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(CPU seconds, wall seconds) of one epoch per setting and repetition. The CPU time of the
    process is the robust figure on a shared machine (wall time includes waiting for a core)."""
    cfg = demo_config("fp32")
    train_set, spec = build_train_set(cfg)
    cfg = cfg.resolve(spec.eps)
    loss = prunekit.LOSSES.build("trades", eps=cfg.loss.eps, step_size=cfg.loss.step_size,
                                 steps=cfg.loss.steps, beta=cfg.loss.beta)
    names = list(SETTINGS)
    times: dict[str, list[float]] = {n: [] for n in names}
    walls: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps + 1):  # repetition 0 warms up every setting and is dropped
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            amp, cl, amp_attack = SETTINGS[name]
            seed_everything(derive_seed(cfg.seed, "init"))
            model = prunekit.MODELS.build(cfg.model.name, num_classes=spec.num_classes,
                                          in_channels=spec.input_shape[0], width=cfg.model.width,
                                          mean=spec.mean, std=spec.std)
            opt = make_optimizer(list(model.parameters()), cfg.pretrain)
            loader = build_loader(train_set, cfg.data.batch_size, seed=cfg.seed)
            cpu0 = time.process_time()
            res = fit(model, loss, opt, make_scheduler(opt, cfg.pretrain), loader, 1,
                      amp=amp, channels_last=cl, amp_attack=amp_attack, progress=False,
                      seed=cfg.seed)
            cpu = time.process_time() - cpu0
            if rep:
                times[name].append(cpu)
                walls[name].append(res.seconds)
            print(f"  epoch rep {rep} {name}: {cpu:.1f} CPU-s, {res.seconds:.1f} s wall",
                  flush=True)
    return times, walls


# -- 2. final accuracy -------------------------------------------------------------------------
def train_and_evaluate(name: str, n_eval: int, work: Path) -> dict[str, Any]:
    from prunekit.pruning import measure

    setting, over = ACCURACY_SETTINGS[name]
    cfg = demo_config(setting, method="d2bc", sparsity=0.9, **over)
    t0, cpu0 = time.perf_counter(), time.process_time()
    tag = name.replace(",", "").replace(" ", "_")
    res = run_pipeline(cfg, work / tag, cache_dir=work / tag / "cache", progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rcfg = res.cfg
    test = build_test_set(rcfg)
    ev = RobustnessEvaluator(rcfg.eval.eps, attacks=("autoattack-fast",), n_examples=n_eval,
                             batch_size=250, seed=0)
    meas = measure(res.model, res.example_inputs, dense=res.dense_model)
    out: dict[str, Any] = {"train_wall_s": wall, "train_cpu_s": cpu,
                           "records": {k: v.seconds for k, v in res.records.items()},
                           "d2bc_macs_reduction": meas.macs_reduction}
    for model_name, model in (("dense", res.dense_model), ("d2bc", res.model)):
        r = ev.evaluate(model, test)
        out[model_name] = {"clean": r.flags["clean"].tolist(),
                           "aa": r.flags["autoattack-fast"].tolist(), "eval_s": r.eval_s}
        print(f"  {name} {model_name}: clean {r.clean_acc:.3f}, aa-fast "
              f"{r.robust_acc['autoattack-fast']:.3f} ({r.eval_s:.0f} s)", flush=True)
    out["dense_model"] = res.dense_model
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def mcnemar_p(a: list[bool], b: list[bool]) -> tuple[int, int, float]:
    """(a right & b wrong, a wrong & b right, exact two-sided McNemar p)."""
    from statsmodels.stats.contingency_tables import mcnemar

    n10 = sum(1 for u, v in zip(a, b) if u and not v)
    n01 = sum(1 for u, v in zip(a, b) if v and not u)
    n11 = sum(1 for u, v in zip(a, b) if u and v)
    n00 = len(a) - n10 - n01 - n11
    return n10, n01, float(mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue)


# -- 3. the training-time attack under bf16 ---------------------------------------------------
def attack_strength(model: torch.nn.Module, n: int) -> dict[str, dict[str, float]]:
    cfg = demo_config("fp32").resolve(0.1)
    test = build_test_set(cfg)
    x = torch.stack([test[i][0] for i in range(n)])
    y = torch.tensor([int(test[i][1]) for i in range(n)])
    model = copy.deepcopy(model).eval().float()
    trades = prunekit.LOSSES.build("trades", eps=cfg.loss.eps, step_size=cfg.loss.step_size,
                                   steps=cfg.loss.steps)
    pgd = PGD(cfg.loss.eps, steps=10, start="uniform")
    out: dict[str, dict[str, float]] = {}
    for label, attack in (("TRADES-3 (training attack)", trades.attack), ("PGD-10", pgd)):
        row = {}
        for prec in ("fp32", "bf16"):
            torch.manual_seed(0)
            if prec == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16), training_attack_autocast(True):
                    x_adv = attack(model, x, y)
            else:
                x_adv = attack(model, x, y)
            with torch.no_grad():
                row[prec] = float((model(x_adv).argmax(1) == y).float().mean())
        out[label] = row
    return out


# -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per setting")
    ap.add_argument("--n-eval", type=int, default=1000, help="test images for the accuracy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--out", default=None, help="JSON file with every number")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override the demo recipe (e.g. data.train_subset=256 for a dry run)")
    args = ap.parse_args()
    import yaml

    for item in args.overrides:
        key, _, raw = item.partition("=")
        OVERRIDES[key] = yaml.safe_load(raw)
    torch.set_num_threads(args.threads)
    ok, why = bf16_support("cpu")
    if not ok:
        raise SystemExit(f"cpu_fast_path: {why}; nothing to compare")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} thread(s); load at start: {load}", flush=True)
    report: dict[str, Any] = {"load_start": load, "torch": torch.__version__}

    times, walls = epoch_times(args.reps)
    ratios = {n: [t / f for t, f in zip(times[n], times["fp32"])] for n in SETTINGS}
    report["epoch_cpu_s"], report["epoch_wall_s"], report["ratio_to_fp32"] = times, walls, ratios
    print("\n| setting | epoch CPU-s (median) | (min) | CPU time / fp32 (median of paired "
          "reps) | speed-up | epoch wall s (median) |\n|---|---:|---:|---:|---:|---:|")
    for n in SETTINGS:
        r = statistics.median(ratios[n])
        print(f"| {n} | {statistics.median(times[n]):.1f} | {min(times[n]):.1f} | {r:.3f} | "
              f"{1 / r:.2f}x | {statistics.median(walls[n]):.1f} |")

    if not args.skip_accuracy:
        with tempfile.TemporaryDirectory() as tmp:
            acc = {s: train_and_evaluate(s, args.n_eval, Path(tmp)) for s in ACCURACY_SETTINGS}
        dense32 = acc["fp32"].pop("dense_model")
        for s in ACCURACY_SETTINGS:
            acc[s].pop("dense_model", None)
        report["accuracy"] = acc
        print("\n| setting | training CPU-s | model | clean (Wilson 95 %) | AA-fast (Wilson 95 %) "
              "| McNemar vs fp32: clean p (n10/n01) | AA p (n10/n01) |\n"
              "|---|---:|---|---|---|---:|---:|")
        for s in ACCURACY_SETTINGS:
            for m in ("dense", "d2bc"):
                cells = []
                for key in ("clean", "aa"):
                    f = acc[s][m][key]
                    lo, hi = wilson(sum(f), len(f))
                    cells.append(f"{100 * sum(f) / len(f):.1f} % [{100 * lo:.1f}, "
                                 f"{100 * hi:.1f}]")
                ps = []
                for key in ("clean", "aa"):
                    if s == "fp32":
                        ps.append("–")
                    else:
                        n10, n01, p = mcnemar_p(acc["fp32"][m][key], acc[s][m][key])
                        ps.append(f"{p:.2f} ({n10}/{n01})")
                red = 100 * acc[s]["d2bc_macs_reduction"]
                label = m if m == "dense" else f"d2bc ({red:.1f} % MACs removed)"
                print(f"| {s} | {acc[s]['train_cpu_s']:.0f} | {label} | {cells[0]} | "
                      f"{cells[1]} | {ps[0]} | {ps[1]} |")
        strength = attack_strength(dense32, args.n_eval)
        report["attack_strength"] = strength
        print("\n| attack on the fp32 dense model | accuracy under the fp32 attack | "
              "under the bf16 attack |\n|---|---:|---:|")
        for label, row in strength.items():
            print(f"| {label} | {100 * row['fp32']:.1f} % | {100 * row['bf16']:.1f} % |")
    report["load_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nload at end: {report['load_end']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
