"""Check that two results.csv files agree on the results-schema columns 1-29 (DESIGN.md's
schema), except timing and provenance: ``train_s``, ``eval_s``, ``git_sha``,
``prunekit_version``, ``torch_version``. Rows are matched by ``run_id``.

Used to show that a refactoring left results unchanged, e.g.::

    git stash; prunekit bench benchmarks/grids/smoke.yaml --out /tmp/before; git stash pop
    prunekit bench benchmarks/grids/smoke.yaml --out /tmp/after
    python benchmarks/compare_results.py /tmp/before/results.csv /tmp/after/results.csv

Exit status 0 if identical (cell by cell, as text), 1 with one line per difference otherwise.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from prunekit.bench.store import SCHEMA

#: columns that legitimately differ between two runs of the same grid
IGNORED = ("train_s", "eval_s", "git_sha", "prunekit_version", "torch_version")


def rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["run_id"]: r for r in csv.DictReader(fh)}


def differences(a: Path, b: Path, columns: tuple[str, ...] = SCHEMA) -> list[str]:
    """One line per differing cell, missing or extra run_id."""
    ra, rb = rows(a), rows(b)
    out = [f"{rid}: only in {a}" for rid in ra if rid not in rb]
    out += [f"{rid}: only in {b}" for rid in rb if rid not in ra]
    for rid in ra.keys() & rb.keys():
        for col in columns:
            if col not in IGNORED and ra[rid].get(col) != rb[rid].get(col):
                out.append(f"{rid}: {col} {ra[rid].get(col)!r} != {rb[rid].get(col)!r}")
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = p.parse_args(argv)
    diff = differences(args.before, args.after)
    n = len(rows(args.before))
    compared = [c for c in SCHEMA if c not in IGNORED]
    for line in diff:
        print(line)
    print(f"{n} rows, {len(compared)} of the {len(SCHEMA)} schema columns compared "
          f"(ignored: {', '.join(IGNORED)}): {'identical' if not diff else f'{len(diff)} differences'}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
