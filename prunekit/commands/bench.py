"""``prunekit bench GRID.yaml --out DIR``: run a grid into DIR/results.csv (docs/bench.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prunekit.commands import _args
from prunekit.errors import ConfigError
from prunekit.overrides import override_grid, parse_only


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="run a benchmark grid into DIR/results.csv (resumable)",
                       description="Expand GRID.yaml, validate every point, then run each "
                                   "unfinished run and append its row to DIR/results.csv.")
    p.add_argument("grid", help="grid YAML (benchmarks/grids/*.yaml)")
    p.add_argument("--out", required=True, help="output directory (results.csv, runs/, cache/)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run only shard I of N (0-based), e.g. $SLURM_ARRAY_TASK_ID/8")
    p.add_argument("--shard-by", choices=("run", "pretrain"), default=None,
                   help="deal single runs (default) or whole pretraining groups to shards")
    p.add_argument("--dry-run", action="store_true",
                   help="list the expanded runs and their status; train nothing")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="shared pretraining cache (default OUT/cache)")
    p.add_argument("--device", type=_args.device, default=None,
                   help="override every run's device (cpu, cuda:0)")
    p.add_argument("--no-table", action="store_true", help="do not print the table at the end")
    p.add_argument("--threads", type=_args.positive_int, default=None,
                   help="torch intra-op threads (default: torch's; 1 per process is best when "
                        "several shards share a CPU; with --jobs: 1 per worker)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the grid's base, e.g. --set pretrain.epochs=1 "
                        "(YAML value; validated like the grid; repeatable)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only the runs whose config has this value, e.g. --only method=d2bc "
                        "(repeatable: a repeated key means any of its values)")
    p.add_argument("--jobs", type=_args.positive_int, default=1, metavar="N",
                   help="N local worker processes sharing the grid (one torch thread each "
                        "unless --threads)")
    p.add_argument("--reevaluate", action="store_true",
                   help="evaluation only: grid points whose training is finished in --out under "
                        "another eval section are evaluated on that run's model.pt (nothing is "
                        "trained; docs/bench.md)")
    c = p.add_argument_group("cluster launcher (submitit; defaults from the grid's launcher: "
                             "section)")
    c.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local",
                   help="local: run here (default); slurm: one array task per pretraining "
                        "group (--shard-by run: per run) of the unfinished runs; "
                        "submitit-local: the same tasks as local subprocesses")
    c.add_argument("--partition", default=None, help="SLURM partition")
    c.add_argument("--gpus", type=int, default=None, help="GPUs per task")
    c.add_argument("--cpus", type=int, default=None, help="CPUs per task")
    c.add_argument("--time", default=None, help="time limit per task: minutes or [D-]HH:MM:SS")
    c.add_argument("--mem", type=float, default=None, help="memory per task in GB")
    c.add_argument("--array-parallelism", type=int, default=None, metavar="K",
                   help="at most K tasks at once")
    c.add_argument("--wait", action="store_true",
                   help="wait for the submitted tasks, then print the table")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    # deferred: prunekit.bench loads pandas, scipy and statsmodels (its report), which every
    # other subcommand would pay for at start-up (the CLI imports all subcommand modules)
    from prunekit.bench.grid import load_grid, parse_shard
    from prunekit.bench.jobs import GridInterrupted
    from prunekit.bench.runner import run_grid
    from prunekit.bench.supervise import sigterm_as_interrupt

    grid = override_grid(load_grid(args.grid), args.overrides)
    only = parse_only(args.only)
    shard = parse_shard(args.shard)
    if args.threads is not None and args.jobs == 1:  # workers set their own
        import torch

        torch.set_num_threads(args.threads)

    def say(msg: str) -> None:
        print(msg, flush=True)

    if args.launcher != "local":
        if shard is not None or args.jobs > 1:
            raise ConfigError("--launcher splits the grid itself: drop --shard / --jobs")
        return _launch(args, grid, only)
    if args.reevaluate:
        if shard is not None or args.jobs > 1 or args.dry_run:
            raise ConfigError("--reevaluate runs serially on the whole grid: drop --shard, "
                              "--jobs and --dry-run")
        from prunekit.bench.reevaluate import reevaluate_grid  # deferred: as above

        summary = reevaluate_grid(grid, args.out, device=args.device, progress=say, only=only)
        print(f"re-evaluated: {len(summary.ran_ok)} ok, {len(summary.ran_failed)} failed "
              f"-> {summary.csv_path}")
        return 1 if summary.ran_failed else 0
    try:
        with sigterm_as_interrupt():  # SIGTERM stops the grid like Ctrl-C (docs/reliability.md)
            summary = run_grid(grid, args.out, shard=shard, dry_run=args.dry_run,
                               cache_dir=args.cache, shard_by=args.shard_by, device=args.device,
                               progress=say, only=only, jobs=args.jobs, threads=args.threads)
    except GridInterrupted as exc:
        print(f"prunekit bench: {exc}", file=sys.stderr)
        return 130
    if args.dry_run:
        label = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        print(f"grid {summary.grid}{label}: {len(summary.runs)} runs -> {summary.csv_path}")
        for r in summary.runs:
            st = summary.status[r.run_id]
            print(f"  {r.index:4d}  {st:8s}  {r.run_id}" + (f"  [{r.variant}]" if r.variant else ""))
        counts = {s: list(summary.status.values()).count(s) for s in ("ok", "failed", "pending")}
        print(f"finished {counts['ok']}, failed {counts['failed']}, pending {counts['pending']}")
        return 0
    print(summary.line(), flush=True)
    _table(args, grid, summary.csv_path)
    return 0 if summary.complete() else 1


def _table(args: argparse.Namespace, grid: Any, csv_path: Path) -> None:
    show = grid.bench.get("table", True) and not args.no_table
    if show and csv_path.exists():
        from prunekit.bench.report import report  # deferred: as in run()

        print()
        try:
            text = report(csv_path, fmt=grid.bench.get("format", "md"),
                          versus=grid.bench.get("versus")).text
        except ConfigError as exc:  # e.g. bench.versus pairs nothing yet: the runs are kept
            print(f"prunekit bench: no report table: {exc}", file=sys.stderr)
            return
        print(text, end="")


def _launch(args: argparse.Namespace, grid: Any, only: dict[str, list[Any]]) -> int:
    """``--launcher slurm|submitit-local``: submit the unfinished runs as array tasks."""
    from prunekit.bench.launch import LaunchSettings, plan_tasks, submit  # deferred: as in run()

    flags = {"partition": args.partition, "gpus": args.gpus, "cpus": args.cpus,
             "time": args.time, "mem": args.mem, "array_parallelism": args.array_parallelism,
             "group_by": args.shard_by}
    settings = LaunchSettings.build(grid.launcher, flags)
    if args.dry_run:
        tasks = plan_tasks(grid, args.out, only, settings.group_by)
        print(f"grid {grid.name}: {len(tasks)} array tasks of unfinished runs "
              f"({settings.parameters('prunekit-' + grid.name)})")
        for i, task in enumerate(tasks):
            print(f"  task {i}: " + ", ".join(r.run_id for r in task))
        return 0
    tasks, jobs = submit(grid, args.out, args.launcher, settings, only=only,
                         cache_dir=args.cache, device=args.device, threads=args.threads)
    if not jobs:
        print(f"grid {grid.name}: nothing to submit, every run is finished -> "
              f"{Path(args.out) / 'results.csv'}")
        return 0
    print(f"submitted {len(jobs)} array tasks ({sum(len(t) for t in tasks)} runs) of grid "
          f"{grid.name}: job {jobs[0].job_id.split('_')[0]}; logs in {jobs[0].paths.folder}")
    if not args.wait:
        print("re-run the same command once they have ended to submit what is unfinished")
        return 0
    failed = 0
    for job in jobs:
        try:
            failed += len(job.result()["failed"])
        except Exception as exc:  # noqa: BLE001 - a task that died: say so, keep collecting
            failed += 1
            print(f"task {job.job_id} failed: {str(exc).strip().splitlines()[-1]}")
    _table(args, grid, Path(args.out) / "results.csv")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    from prunekit.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
