"""Every error digest raises, so callers catch one base and still know what went wrong.

    DigestError
    ├── ConfigError      the config file (or the site's _config.yml) is unusable
    ├── PostError        one post file cannot be read; the others still are
    ├── StateError       the state database (or another file of the state folder) cannot
    │   │                be read or written: damaged, locked, read-only, disk full
    │   └── StateLost    the send log is gone while earlier digests left their traces
    └── OutputError      a file cannot be written where digest puts it (also an OSError)

Library errors (YAML, lxml, SQLite, OSError on writes) are translated into these where they
enter, each naming the file and what to do, so the command line's one boundary
(cli/commands.py) only has to print them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class DigestError(Exception):
    """Base of all errors digest raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input file: where, what, and what to do about it."""

    path: Path
    line: int | None
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The hint for a misspelt key: the closest allowed one, or the list of them."""
    options = list(choices)
    import difflib  # only on the way to an error message: not at every start-up

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(options))


class ConfigError(DigestError):
    """The configuration cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PostError(DigestError):
    """A post file is broken: it is rejected, and the build goes on without it."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


class StateError(DigestError):
    """The state folder's database or files cannot be used; says which file and what to do."""

    def __init__(self, path: Path, what: str, todo: str) -> None:
        self.path = path
        self.what = what
        self.todo = todo
        super().__init__(f"{path}: {what}; {todo}")


class StateLost(StateError):
    """The send log is empty or missing, but earlier digests left traces: sending now would
    mail everyone the last digest again."""


class OutputError(DigestError, OSError):
    """A file cannot be written (full disk, read-only folder, no permission); nothing half
    written is left behind. Also an OSError with the cause's errno, so code that handled the
    OSError before it was translated still does."""

    def __init__(self, path: Path, error: OSError, todo: str = "") -> None:
        reason = error.strerror or str(error)
        self.message = f"cannot write {path}: {reason}; {todo or _todo_for(error)}"
        super().__init__(error.errno, reason, str(path))
        self.path = path
        self.error = error

    def __str__(self) -> str:
        return self.message


def _todo_for(error: OSError) -> str:
    import errno

    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space on that disk and run the command again"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make that folder writable by the user running digest, or point the config " \
               "at one that is"
    return "check the folder exists and is writable, then run the command again"


# the tree above and the Problem errors carry (tests/test_public_api.py pins them)
__all__ = ["ConfigError", "DigestError", "OutputError", "PostError", "Problem", "StateError",
           "StateLost"]
