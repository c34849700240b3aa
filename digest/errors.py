"""Every error digest raises, so callers catch one base and still know what went wrong.

    DigestError
    ├── ConfigError      the config file (or the site's _config.yml) is unusable
    └── PostError        one post file cannot be read; the others still are

Library errors (YAML, lxml, SQLite) are translated into these where they enter.
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
