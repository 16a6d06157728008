"""The one error type for problems a user can fix (bad config, bad file, bad path).

Every such error derives from :class:`UserError`; its message is one line that names the problem
and the fix. The CLI (``prunekit/cli.py``) prints it as ``prunekit COMMAND: error: MESSAGE`` and
exits with status 2 -- never a traceback. :class:`ConfigError` (a bad config field or value) is
defined here, beside its base, so that any module can raise it without importing the config
(``prunekit.config`` re-exports it). The other subclasses live with what they guard:
``CheckpointError`` (prunekit/checkpoint.py), ``SchemaError`` (prunekit/bench/store.py),
``EvalStateError`` (prunekit/eval/state.py), ``OutputPathError`` (prunekit/paths.py) and
``AttackNameError`` (prunekit/attacks/parse.py, a ``ConfigError``).
"""
from __future__ import annotations

__all__ = ["UserError", "ConfigError", "one_line"]


class UserError(Exception):
    """A problem the user can fix; ``str()`` is one line naming it and the fix."""


class ConfigError(UserError, ValueError):
    """An invalid config field or value; the message is one line naming the field (re-exported
    by :mod:`prunekit.config`)."""


def one_line(text: object, limit: int = 300) -> str:
    """The first non-empty line of ``text`` (cut at ``limit`` characters) -- for quoting a
    library's multi-line message inside our own one-line errors."""
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[:limit - 3] + "..."
    return ""
