"""``prunekit check NAME [NAME ...]``: run the contract tests shipped in ``prunekit.testing`` on
the named registered components (built-ins or installed plug-ins) -- the same cases as
``python -m pytest --pyargs prunekit.testing``, selected by exact name. Needs pytest (the
``dev`` extra). Exit status: 0 all passed, 1 a contract test failed, 2 a usage error."""
from __future__ import annotations

import argparse
import shlex

from prunekit.errors import UserError
from prunekit.testing.select import FAMILIES, SelectNames, contract_families


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="run the shipped contract tests on registered components",
                       description="Run prunekit's contract tests (prunekit.testing) on the "
                                   "named components: a pruner, attack, loss, model, dataset "
                                   "or searcher, your installed plug-ins included.")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="registered component names (`prunekit list` shows them)")
    p.add_argument("--pytest-args", default="", metavar="ARGS",
                   help="extra pytest arguments, e.g. --pytest-args='-x -m \"not slow\"'")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    canon: set[str] = set()
    for name in args.names:
        fams = contract_families(name)
        if not fams:
            raise UserError(f"{name!r} is not a registered {', '.join(FAMILIES)} name "
                            f"(`prunekit list` shows them; is the plug-in installed?)")
        canon.update(fams.values())
    try:
        import pytest  # deferred: a dev dependency, needed by this command only
    except ImportError:
        raise UserError("prunekit check needs pytest: pip install 'prunekit[dev]' "
                        "(or pip install pytest)") from None
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--pyargs", "prunekit.testing",
                        *shlex.split(args.pytest_args)], plugins=[SelectNames(canon)])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise UserError(f"no contract test selected for {', '.join(sorted(canon))}")
    return 0 if code == pytest.ExitCode.OK else 1
