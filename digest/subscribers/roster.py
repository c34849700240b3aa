"""Who is on the list, from every source at once, for the owner's own tools (`digest
subscribers list|show|export`): the subscribers file, the sign-ups and imports kept in the
state, the tags chosen on the web, the suppression list.

Pure functions over what the caller read once: a list of 100,000 is one pass, with no query
per person. As everywhere else, the file wins over a member with the same address (it counts
once, as the file has it), a web choice of tags wins over the tags of the file or the
sign-up, and a suppression wins over everything: a suppressed address gets nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # loaded by whoever calls: importing this module stays cheap for the CLI
    from ..state.interface import Member, Suppression
    from .load import Subscriber

ListSource = Literal["yaml", "signup", "import"]
SOURCES: tuple[ListSource, ...] = ("yaml", "signup", "import")


@dataclass(frozen=True, slots=True)
class Entry:
    """One address on the list as the send sees it (slotted: there may be 100,000)."""

    key: str
    email: str
    name: str | None
    tags: tuple[str, ...] | None  # what they get: the web choice, else the file's or sign-up's
    exclude_tags: tuple[str, ...]
    source: ListSource
    line: int | None  # where the entry starts in the subscribers file (source yaml)
    since: datetime | None  # signed up (confirmed) or first imported; None for the file
    chosen_on_web: bool  # tags is the web choice
    suppression: Suppression | None  # set: on the list, but gets nothing

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "email": self.email, "name": self.name,
            "tags": None if self.tags is None else list(self.tags),
            "exclude_tags": list(self.exclude_tags), "tags_chosen_on_web": self.chosen_on_web,
            "source": self.source, "line": self.line,
            "since": self.since.isoformat() if self.since else None}
        if self.suppression is not None:
            found.update(suppression_json(self.suppression))
        return found


def suppression_json(s: Suppression) -> dict[str, Any]:
    return {"reason": s.reason, "suppressed_since": s.since.isoformat(),
            "evidence": s.evidence}


def entries(file: Iterable[Subscriber], members: Iterable[Member],
            preferences: Mapping[str, tuple[str, ...] | None],
            suppressions: Mapping[str, Suppression]) -> Iterator[Entry]:
    """Everyone on the list, the file's entries first (in file order), then the members the
    file does not have (in the order they came); the suppressed too, with their reason."""
    listed: set[str] = set()
    for sub in file:
        listed.add(sub.key)
        yield _entry(sub.key, sub.email, sub.name, sub.tags, sub.exclude_tags, "yaml",
                     sub.line, None, preferences, suppressions)
    for m in members:
        if m.key not in listed:
            yield _entry(m.key, m.email, m.name, m.tags, (), m.source, None, m.since,
                         preferences, suppressions)


def _entry(key: str, email: str, name: str | None, tags: tuple[str, ...] | None,
           exclude: tuple[str, ...], source: ListSource, line: int | None,
           since: datetime | None, preferences: Mapping[str, tuple[str, ...] | None],
           suppressions: Mapping[str, Suppression]) -> Entry:
    chosen = key in preferences
    return Entry(key, email, name, preferences[key] if chosen else tags, exclude, source,
                 line, since, chosen, suppressions.get(key))


@dataclass(frozen=True)
class Unlisted:
    """A suppressed address that is on no list (unsubscribed, bounced, or suppressed ahead)."""

    suppression: Suppression

    def to_json(self) -> dict[str, Any]:
        return {"email": self.suppression.key, "name": None, "tags": None,
                "exclude_tags": [], "tags_chosen_on_web": False, "source": None,
                "line": None, "since": None, **suppression_json(self.suppression)}


def tags_text(entry: Entry) -> str:
    """The tags someone gets, for a column: 'all', 'union, data', 'all except intern'."""
    text = "all" if entry.tags is None else ", ".join(entry.tags) or "none"
    if entry.exclude_tags:
        text += f" except {', '.join(entry.exclude_tags)}"
    return text + (" (web)" if entry.chosen_on_web else "")


def export_yaml(entry: Entry) -> str:
    """*entry* as one item of the subscribers file ('- email: …', tags as '[a, b]'), quoted
    by the YAML emitter itself, so that any name or tag reads back as written."""
    import yaml

    dumper, flow = _dumper()
    item: dict[str, Any] = {"email": entry.email}
    if entry.name:
        item["name"] = entry.name
    if entry.tags is not None:
        item["tags"] = flow(entry.tags)
    if entry.exclude_tags:
        item["exclude_tags"] = flow(entry.exclude_tags)
    return yaml.dump([item], Dumper=dumper, allow_unicode=True, sort_keys=False,
                     default_flow_style=False, width=1_000_000)


@cache
def _dumper() -> tuple[Any, type[list[str]]]:
    """A safe YAML dumper (the C one when PyYAML has it: 100,000 entries in seconds rather
    than a minute) that writes a list of tags on one line, as the subscribers file shows
    them; and the list type it does that for."""
    import yaml

    class Flow(list[str]):
        pass

    base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc]  # a base chosen at run time
        pass

    Dumper.add_representer(Flow, lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=True))
    return Dumper, Flow
