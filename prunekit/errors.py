"""The one error type for problems a user can fix (bad config, bad file, bad path).

Every such error derives from :class:`UserError`; its message is one line that names the problem
and the fix. The CLI (``prunekit/cli.py``) prints it as ``prunekit COMMAND: error: MESSAGE`` and
exits with status 2 -- never a traceback. Library code raises the specific subclasses
(``ConfigError``, ``CheckpointError``, ``SchemaError``, ``EvalStateError``, ``OutputPathError``).
"""
from __future__ import annotations

__all__ = ["UserError", "one_line"]


class UserError(Exception):
    """A problem the user can fix; ``str()`` is one line naming it and the fix."""


def one_line(text: object, limit: int = 300) -> str:
    """The first non-empty line of ``text`` (cut at ``limit`` characters) -- for quoting a
    library's multi-line message inside our own one-line errors."""
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[:limit - 3] + "..."
    return ""
