"""``prunekit list``: the registered models, datasets, losses, pruners, searchers and attacks."""
from __future__ import annotations

import argparse

import prunekit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list registered models, datasets, losses, pruners, "
                                    "searchers, attacks")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    for title, reg in (("models", prunekit.MODELS), ("datasets", prunekit.DATASETS),
                       ("losses", prunekit.LOSSES), ("pruners", prunekit.PRUNERS),
                       ("searchers", prunekit.SEARCHERS), ("attacks", prunekit.ATTACKS)):
        print(f"{title:9s} {', '.join(reg.names(aliases=True))}")
    return 0
