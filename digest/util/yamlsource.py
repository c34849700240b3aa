"""YAML loading that is bounded and remembers where each key was written.

Every YAML digest reads (posts' front matter, the subscribers file, config.yaml and the
site's _config.yml) goes through BoundedLoader: a document is composed by libyaml (which
itself refuses nesting deeper than 1,000), then its node graph is checked (check_tree)
before any Python value is built: nesting, the number of values with aliases expanded (a
466-byte "billion laughs" expands to 387 million), aliases that contain themselves. Only
the tags a hand-written file needs are constructed; a value a constructor cannot take
(`!!float x`, `2019-02-30`, an integer of 5,000 digits) is a Refused error at its line,
never a ValueError from deep inside PyYAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ..errors import Problem

try:  # the C loader is ~10x faster; fall back where libyaml is missing
    SafeLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover
    SafeLoader = yaml.SafeLoader

KeyPath = tuple[str | int, ...]

MAX_DEPTH = 64  # no hand-written YAML nests this deep; our own code recurses over it
INT_DIGITS = 4300  # Python's own bound for int <-> str (sys.int_info.default_max_str_digits)
_INT_BITS = int(INT_DIGITS / 0.30103)  # the same bound for 0x…, 0b… and 1:2:3 integers
DEFAULT_NODES = 100_000  # config.Limits.yaml_nodes; the config files themselves use this
# what a library may raise from a value it cannot take, instead of a YAMLError
VALUE_ERRORS = (ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError,
                RecursionError)


class Refused(yaml.MarkedYAMLError):
    """A document (or a value in it) digest will not build: what, where, and what to do."""

    def __init__(self, what: str, hint: str, mark: Any) -> None:
        super().__init__(problem=what, problem_mark=mark)
        self.hint = hint


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width] + "…"


def _refuse_tag(loader: Any, node: yaml.Node) -> Any:
    tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
    raise Refused(f"the YAML tag '{_short(tag)}' is not supported here",
                  "remove the tag: write plain text, numbers, lists and 'key: value'",
                  node.start_mark)


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    text = str(node.value).replace("_", "")
    if len(text) > INT_DIGITS:
        raise Refused(f"a number of {len(text)} digits (the most is {INT_DIGITS})",
                      "put it in quotes to make it text", node.start_mark)
    value: int = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    if value.bit_length() > _INT_BITS:
        raise Refused(f"a number of more than {INT_DIGITS} decimal digits",
                      "put it in quotes to make it text", node.start_mark)
    return value


class BoundedLoader(SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader without the tags no hand-written file needs (!!binary, !!set, !!omap,
    !!pairs, any unknown or !!python tag), whose value errors become Refused at the line."""

    yaml_constructors: ClassVar[dict[Any, Any]] = {tag: constructor for tag, constructor in
                         SafeLoader.yaml_constructors.items()
                         if tag is not None and tag.rpartition(":")[2] not in
                         ("binary", "set", "omap", "pairs")}

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except VALUE_ERRORS as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            kind = str(node.tag).rpartition(":")[2] or "a value"
            raise Refused(f"'{_short(str(value))}' cannot be read as {kind}: "
                          f"{_short(str(exc), 120)}",
                          "correct the value, or put it in quotes to make it text",
                          node.start_mark) from None


BoundedLoader.add_constructor(None, _refuse_tag)
BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _check_plain(node: yaml.Node, max_nodes: int) -> None:
    """check_tree for a document without anchors (a tree, so no memory or cycles): a
    third of the cost, and almost every front matter is one."""
    count = 0
    stack = [(node, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        current, depth = pop()
        count += 1
        if depth > MAX_DEPTH:
            raise Refused(f"nested more than {MAX_DEPTH} levels deep", "flatten it",
                          current.start_mark)
        if count > max_nodes:
            raise Refused(f"more than {max_nodes} values", "split it, or raise "
                          "limits.yaml_nodes in config.yaml", current.start_mark)
        value = current.value
        if isinstance(value, list):  # a sequence, or a mapping's (key, value) pairs
            for item in value:
                if isinstance(item, tuple):
                    push((item[0], depth + 1))
                    push((item[1], depth + 1))
                else:
                    push((item, depth + 1))


def check_tree(node: yaml.Node, max_nodes: int = DEFAULT_NODES, *,
               anchors: bool = True) -> None:
    """Raise Refused if *node* nests too deep, holds an alias of itself, or expands (with
    its aliases) to more than *max_nodes* values. Linear in the nodes as written: a node
    reached again through an alias is counted from memory, not walked again. *anchors*:
    False when the text has no '&', so every node is reached once."""
    if not anchors:
        _check_plain(node, max_nodes)
        return
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height) once walked
    open_: set[int] = set()

    def walk(current: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(current)
        known = done.get(key)
        if known is None:
            if key in open_:
                raise Refused("an alias refers to the list or mapping that contains it "
                              "(it would be infinite)", "remove the alias ('*…')",
                              current.start_mark)
            if depth > MAX_DEPTH:
                raise Refused(f"nested more than {MAX_DEPTH} levels deep",
                              "flatten it", current.start_mark)
            count, height = 1, 0
            if not isinstance(current, yaml.ScalarNode):
                open_.add(key)
                children = current.value if isinstance(current, yaml.SequenceNode) else \
                    [child for pair in current.value for child in pair]
                for child in children:
                    values, below = walk(child, depth + 1)
                    count += values
                    height = max(height, below + 1)
                    if count > max_nodes:
                        break
                open_.discard(key)
            known = done[key] = (count, height)
        if depth + known[1] > MAX_DEPTH:
            raise Refused(f"nested more than {MAX_DEPTH} levels deep (through an alias)",
                          "flatten it", current.start_mark)
        if known[0] > max_nodes:
            raise Refused(f"more than {max_nodes} values once its aliases are expanded",
                          "write the values out, or raise limits.yaml_nodes in config.yaml",
                          current.start_mark)
        return known

    walk(node, 0)


def construct(loader: Any, node: yaml.Node, max_nodes: int = DEFAULT_NODES, *,
              anchors: bool = True) -> Any:
    """The value of *node*, checked first; on an error the loader is left ready for the
    next document or list item (PyYAML leaves half-built state behind)."""
    try:
        check_tree(node, max_nodes, anchors=anchors)
        return loader.construct_document(node)
    except BaseException:
        loader.constructed_objects, loader.recursive_objects = {}, {}
        loader.state_generators, loader.deep_construct = [], False
        raise


def load_bounded(text: str, loader_class: type[Any] = BoundedLoader,
                 max_nodes: int = DEFAULT_NODES) -> Any:
    """yaml.load of one document, bounded: raise a YAMLError (Refused for our bounds)."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return None if node is None else construct(loader, node, max_nodes,
                                                   anchors="&" in text)
    finally:
        loader.dispose()


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


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], offset: int,
          seen: set[int]) -> None:
    if id(node) in seen or len(path) > MAX_DEPTH:  # an alias: its keys are already noted
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1 + offset
            _walk(value_node, (*path, key), lines, offset, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1 + offset
            _walk(item, (*path, index), lines, offset, seen)


def key_lines(text: str, line_offset: int = 0) -> dict[KeyPath, int]:
    """Lines of every key in *text*; only called when an error needs a line (it costs a parse)."""
    lines: dict[KeyPath, int] = {}
    try:
        node = yaml.compose(text, Loader=SafeLoader)
    except (yaml.YAMLError, *VALUE_ERRORS):
        return lines
    if node is not None:
        _walk(node, (), lines, line_offset, set())
    return lines


def yaml_problem(path: Path, error: yaml.YAMLError, line_offset: int = 0,
                 text: str | None = None) -> Problem:
    """Turn a PyYAML error into a Problem that names the line the way an editor shows it;
    *text*, the YAML read, gives the line of a character the reader refused."""
    if isinstance(error, yaml.reader.ReaderError):  # a position in *text*, not a mark
        line = text.count("\n", 0, error.position) + 1 + line_offset if text else None
        char = error.character
        code = f"U+{ord(char):04X}" if isinstance(char, str) else f"0x{char:02x}"
        return Problem(path, line, f"invalid YAML: the character {code} is not allowed",
                       "remove it (a control character, often pasted in by accident)")
    if isinstance(error, Refused):
        mark = error.problem_mark
        line = mark.line + 1 + line_offset if mark is not None else None
        return Problem(path, line, str(error.problem), error.hint)
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line = mark.line + 1 + line_offset if mark is not None else None
    what = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"invalid YAML: {what}" + (f" ({context})" if context else "")
    return Problem(path, line, message, "check indentation, colons and quotes on that line")


def load_located(path: Path) -> Located:
    """Load a whole YAML file (a config file) with key lines; raise ConfigError."""
    from ..errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([Problem(path, None, "file not found", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(path, None, f"cannot read: {exc}")]) from None
    try:
        data = load_bounded(text)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(path, exc, text=text)]) from None
    return Located(data if data is not None else {}, key_lines(text))
