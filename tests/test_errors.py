"""One error tree: every error digest raises is defined in digest/errors.py and drawn in its
docstring, and library errors reach the command line translated (file, line, address)."""

from __future__ import annotations

import importlib
import pkgutil
import re

import digest
from digest import errors
from digest.errors import DigestError


def _every_digest_error() -> set[type[DigestError]]:
    """DigestError and all its subclasses, after importing every module of the package (so a
    class defined anywhere in it is found)."""
    for module in pkgutil.walk_packages(digest.__path__, prefix="digest."):
        if not module.name.endswith(".__main__"):  # importing it runs the command line
            importlib.import_module(module.name)
    found: set[type[DigestError]] = set()
    todo: list[type[DigestError]] = [DigestError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("digest") and cls not in found:
            found.add(cls)
            todo.extend(cls.__subclasses__())
    return found


def _drawn_tree() -> dict[str, str | None]:
    """The tree in errors.py's docstring: each class name → its parent's name, read from the
    drawing's indentation."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        found = re.match(r"^\s*(?:[│ ]*[├└]── )?([A-Z][A-Za-z]+)(?:\s{2,}|$)", line)
        if not found or not ("──" in line or line.strip() == "DigestError"):
            continue
        depth = found.start(1)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[found[1]] = stack[-1][1] if stack else None
        stack.append((depth, found[1]))
    return parents


def test_every_digest_error_is_defined_in_errors_py() -> None:
    elsewhere = {f"{c.__module__}.{c.__qualname__}" for c in _every_digest_error()
                 if c.__module__ != "digest.errors"}
    assert elsewhere == set()


def test_the_docstring_draws_every_error_under_its_real_parent() -> None:
    drawn = _drawn_tree()
    real = {c.__name__: next((b.__name__ for b in c.__bases__ if issubclass(b, DigestError)),
                             None)
            for c in _every_digest_error()}
    assert drawn == real


def test_every_error_says_when_it_is_raised() -> None:
    for cls in _every_digest_error():
        assert (cls.__doc__ and cls.__doc__ != DigestError.__doc__) or cls is DigestError, cls
