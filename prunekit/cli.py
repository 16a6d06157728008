"""The ``prunekit`` command: ``train``, ``eval``, ``bench``, ``report``, ``list``.

Each subcommand lives in ``prunekit/commands/<name>.py`` and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` (which sets ``func``). Errors a user can fix
(bad config, unknown name, missing data) print one line to stderr and exit with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

__all__ = ["main"]

COMMANDS = ("train", "eval", "bench", "report", "list")


def build_parser() -> argparse.ArgumentParser:
    from prunekit import __version__

    parser = argparse.ArgumentParser(
        prog="prunekit",
        description="Adversarially robust pruning: train, prune, fine-tune, evaluate, tabulate.")
    parser.add_argument("--version", action="version", version=f"prunekit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"prunekit.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from prunekit.checkpoint import CheckpointError
    from prunekit.config import ConfigError
    from prunekit.registry import OptionError, RegistryError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, RegistryError, OptionError, CheckpointError, FileNotFoundError) as exc:
        print(f"prunekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
