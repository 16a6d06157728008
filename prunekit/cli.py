"""The ``prunekit`` command: ``train``, ``eval``, ``bench``, ``report``, ``list``, ``export``,
``check``, ``import``.

Each subcommand lives in ``prunekit/commands/<name>.py`` and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` (which sets ``func``). Errors a user can fix
(:class:`prunekit.errors.UserError`: bad config, bad file, bad output path; an unknown registry
name; missing data or files; an OS error on a user's path) print one line
``prunekit COMMAND: error: MESSAGE`` to stderr and exit with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import typing
from typing import Sequence

from prunekit._version import __version__
from prunekit.errors import UserError
from prunekit.registry import OptionError, RegistryError

__all__ = ["main"]

COMMANDS = ("train", "eval", "bench", "report", "list", "export", "check")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``prunekit CMD: error: ... (see --help)``."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} "
                     f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prunekit",
        description="Adversarially robust pruning: train, prune, fine-tune, evaluate, tabulate.")
    parser.add_argument("--version", action="version", version=f"prunekit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"prunekit.commands.{name}").add_parser(sub)
    importlib.import_module("prunekit.commands.export").add_import_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (UserError, RegistryError, OptionError, OSError) as exc:
        print(f"prunekit {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _message(exc: BaseException) -> str:
    """One line: the error's own message; an OS error as ``PATH: reason``."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc)
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
