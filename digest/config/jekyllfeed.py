"""jekyll-feed's `feed:` settings in the site's _config.yml → settings.FeedSettings.

A site that switches from jekyll-feed must keep its feeds' addresses and sizes: a feed
that moves loses its readers, and one that grows from jekyll-feed's 10 entries to more
brings old posts back to them as new. So the settings jekyll-feed reads (see its
generator.rb and feed.xml, 0.17) are read the same way here: `path`, `posts_limit`,
`excerpt_only`, `tags` (true, or `only`/`except`/`path`), `categories`, and the `posts`
entry of `collections`. Other collections, and `disable_in_development`, are Jekyll's
business: digest reads _posts only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Problem
from ..util.yamlsource import Located
from .settings import DEFAULT_FEED_ENTRIES, JEKYLL_FEED_ENTRIES, FeedSettings

MAX_ENTRIES = 10_000  # as config.yaml's feeds.entries
_PLUGIN = "jekyll-feed"


class _Reader:
    """Reads one `feed:` mapping, collecting every problem at its line."""

    def __init__(self, path: Path, located: Located) -> None:
        self.path, self.located = path, located
        self.problems: list[Problem] = []

    def problem(self, keys: tuple[str, ...], message: str, hint: str) -> None:
        line = self.located.line_of(keys) or self.located.line_of(("feed",))
        dotted = ".".join(keys)
        self.problems.append(Problem(self.path, line, f"'{dotted}' {message}", hint))

    def file_path(self, keys: tuple[str, ...], value: Any, *, folder: bool) -> str | None:
        """A path under the output folder, '/'-separated, as jekyll-feed's page path."""
        what = "a folder such as feed/by_tag/" if folder else "a file such as feed.xml"
        if folder and isinstance(value, str) and value.strip() == "/":
            return ""  # the site's root: jekyll-feed writes /TAG.xml
        if not isinstance(value, str) or not value.strip("/ "):
            self.problem(keys, "must be a path", f"write {what}")
            return None
        text = value.strip().lstrip("/")
        parts = text.rstrip("/").split("/")
        if any(p in ("", ".", "..") for p in parts) or any(c in text for c in "\\\0\r\n"):
            self.problem(keys, f"is not a plain path under the site: {value!r}",
                         f"write {what}, without '..', '//' or backslashes")
            return None
        if not folder and text.endswith("/"):
            self.problem(keys, f"names a folder, not a file: {value!r}", f"write {what}")
            return None
        return text

    def names(self, keys: tuple[str, ...], value: Any) -> tuple[str, ...] | None:
        """A list of tags or categories; a name that YAML read as a number is its text."""
        if not isinstance(value, list) or any(isinstance(v, dict | list) or v is None
                                              for v in value):
            self.problem(keys, "must be a list of names", "e.g. [news, jobs]")
            return None
        return tuple(str(v) for v in value)

    def flag(self, keys: tuple[str, ...], value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.problem(keys, "must be true or false", "write true or false")
            return None
        return value

    def limit(self, keys: tuple[str, ...], value: Any) -> int | None:
        number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
        if isinstance(number, bool) or not isinstance(number, int) \
                or not 1 <= number <= MAX_ENTRIES:
            self.problem(keys, f"must be a whole number from 1 to {MAX_ENTRIES}: {value!r}",
                         "e.g. 10, jekyll-feed's default")
            return None
        return number


def _tags(reader: _Reader, value: Any, settings: FeedSettings) -> FeedSettings:
    if value is None or isinstance(value, bool):
        return replace(settings, tags=value is not False)  # `tags:` with nothing: on
    if not isinstance(value, dict):
        reader.problem(("feed", "tags"), "must be true, false or a mapping",
                       "e.g. tags: {only: [news], path: feed/by_tag/}")
        return settings
    if "only" in value and value["only"] is not None:
        settings = replace(settings, tags_only=reader.names(("feed", "tags", "only"),
                                                            value["only"]))
    if "except" in value and value["except"] is not None:
        settings = replace(settings, tags_except=reader.names(
            ("feed", "tags", "except"), value["except"]) or ())
    if value.get("path") is not None:
        folder = reader.file_path(("feed", "tags", "path"), value["path"], folder=True)
        settings = replace(settings, tags_path=folder or settings.tags_path)
    return settings


def _posts_collection(reader: _Reader, value: Any) -> dict[str, Any]:
    """`collections: {posts: {path, categories}}`: jekyll-feed prefers these to the
    top-level keys (normalize_posts_meta). A list of names sets nothing for posts."""
    if value is None or isinstance(value, list):
        return {}
    if not isinstance(value, dict):
        reader.problem(("feed", "collections"), "must be a list or a mapping",
                       "e.g. collections: [posts]")
        return {}
    posts = value.get("posts")
    if posts is None:
        return {}
    if not isinstance(posts, dict):
        reader.problem(("feed", "collections", "posts"), "must be a mapping",
                       "e.g. posts: {path: feed.xml}")
        return {}
    return {k: posts[k] for k in ("path", "categories") if posts.get(k) is not None}


def _read(reader: _Reader, feed: dict[str, Any]) -> tuple[FeedSettings, int | None]:
    settings = FeedSettings()
    limit = None
    nested = _posts_collection(reader, feed.get("collections"))
    for key in ("path", "categories"):
        where: tuple[str, ...] = ("feed", key)
        value = feed.get(key)
        if key in nested:
            where, value = ("feed", "collections", "posts", key), nested[key]
        if value is None:
            continue
        if key == "path":
            settings = replace(settings, path=reader.file_path(where, value, folder=False)
                               or settings.path)
        else:
            settings = replace(settings, categories=reader.names(where, value))
    if feed.get("posts_limit") is not None:
        limit = reader.limit(("feed", "posts_limit"), feed["posts_limit"])
    if feed.get("excerpt_only") is not None:
        settings = replace(settings, excerpt_only=bool(
            reader.flag(("feed", "excerpt_only"), feed["excerpt_only"])))
    if "tags" in feed:
        settings = _tags(reader, feed["tags"], settings)
    return settings, limit


def _uses_jekyll_feed(data: dict[str, Any]) -> bool:
    """Whether the site builds its feeds with jekyll-feed: it lists it, or configures it."""
    plugins = [*(data.get("plugins") or []), *(data.get("gems") or [])] \
        if all(isinstance(data.get(k) or [], list) for k in ("plugins", "gems")) else []
    return _PLUGIN in plugins or isinstance(data.get("feed"), dict)


def jekyll_feed_settings(path: Path, located: Located) -> tuple[FeedSettings, int]:
    """The site's feed settings and its entries per feed (jekyll-feed's posts_limit, its
    default 10 where the site uses jekyll-feed, else digest's 20); ConfigError on a bad
    value, at its line. *located* is the _config.yml, already checked to be a mapping."""
    data: dict[str, Any] = located.data
    feed = data.get("feed")
    if feed is None:
        return FeedSettings(), JEKYLL_FEED_ENTRIES if _uses_jekyll_feed(data) \
            else DEFAULT_FEED_ENTRIES
    reader = _Reader(path, located)
    if not isinstance(feed, dict):
        reader.problem(("feed",), "must be a mapping of jekyll-feed's settings",
                       "e.g. feed: {path: feed.xml, posts_limit: 10}")
        raise ConfigError(reader.problems)
    settings, limit = _read(reader, feed)
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings, limit or JEKYLL_FEED_ENTRIES
