"""YAML loading that remembers where each key was written, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem

try:  # the C loader is ~10x faster; fall back where libyaml is missing
    SafeLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover
    SafeLoader = yaml.SafeLoader

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """A loaded YAML document with the 1-based line of every mapping key and list item."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath, default: int | None = None) -> int | None:
        """Line of the deepest known prefix of *path*, so a bad leaf still gets a line."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return default


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], offset: int) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1 + offset
            _walk(value_node, (*path, key), lines, offset)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1 + offset
            _walk(item, (*path, index), lines, offset)


def key_lines(text: str, line_offset: int = 0) -> dict[KeyPath, int]:
    """Lines of every key in *text*; only called when an error needs a line (it costs a parse)."""
    lines: dict[KeyPath, int] = {}
    try:
        node = yaml.compose(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return lines
    if node is not None:
        _walk(node, (), lines, line_offset)
    return lines


def yaml_problem(path: Path, error: yaml.YAMLError, line_offset: int = 0) -> Problem:
    """Turn a PyYAML error into a Problem that names the line the way an editor shows it."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line = mark.line + 1 + line_offset if mark is not None else None
    what = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"invalid YAML: {what}" + (f" ({context})" if context else "")
    return Problem(path, line, message, "check indentation, colons and quotes on that line")


def load_located(path: Path) -> Located:
    """Load a whole YAML file with key lines; raise ValueError-free Problems via ConfigError."""
    from .errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([Problem(path, None, "file not found", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(path, None, f"cannot read: {exc}")]) from None
    try:
        data = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(path, exc)]) from None
    return Located(data if data is not None else {}, key_lines(text))
