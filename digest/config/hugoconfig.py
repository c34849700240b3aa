"""A Hugo site's configuration (hugo.toml, config.toml, config.yaml, config.json) → the site
settings digest needs, read with Hugo's rules, every problem at its file and line.

Hugo reads its config keys case-insensitively (`baseURL`, `baseurl`): so do we. Of its
settings only those that decide a post's URL, date, title and terms are read: baseURL, title,
languageCode, timeZone, contentDir, permalinks, taxonomies (not summaryLength: the
summary is the first paragraph, see posts/hugo.py).

Taxonomies: a Post has tags and categories only, so a site's taxonomies are shared out by
name: one named `categories` (or `category`) gives the categories, every other one (`tags`,
`series`, `authors`, …) gives tags, so that each of its terms still gets its feed. Hugo's
default, when `[taxonomies]` is not set, is tags and categories.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, Problem
from ..util.yamlsource import Located, load_located
from .settings import HugoSite

MAX_CONFIG_BYTES = 4 * 2**20  # a real hugo.toml is a few KB
DEFAULT_TAXONOMIES = {"tag": "tags", "category": "categories"}
# the tokens a permalink pattern may use (posts/hugo.py expands them); `:year` and the rest
# are matched longest first, as Hugo does, so ':slugorfilename' is not ':slug' + 'orfilename'
PERMALINK_TOKENS = ("year", "month", "monthname", "day", "weekday", "weekdayname", "yearday",
                    "section", "sections", "title", "slug", "filename", "contentbasename",
                    "slugorfilename", "slugorcontentbasename")
_TOKEN = re.compile(r":([a-z]+)")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def load_hugo_config(path: Path) -> Located:
    """The config file as data (keys lowercased, as Hugo reads them), with YAML key lines."""
    if path.suffix.lower() in (".yaml", ".yml"):
        located = load_located(path)
        return Located(_lower_keys(located.data),
                       {tuple(k.lower() if isinstance(k, str) else k for k in key): line
                        for key, line in located.lines.items()})
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([Problem(path, None, "file not found", "check the path")]) from None
    except OSError as exc:
        raise ConfigError([Problem(path, None, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(path, None, f"more than {MAX_CONFIG_BYTES:,} bytes",
                                   "is this the site's hugo.toml?")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError([Problem(path, raw.count(b"\n", 0, 1) + 1, "not UTF-8",
                                   "re-save the file as UTF-8")]) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([Problem(path, exc.lineno, f"invalid JSON: {exc.msg}")]) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = _TOML_LINE.search(str(exc))
            message = _TOML_LINE.sub("", str(exc)).strip()
            raise ConfigError([Problem(path, int(found.group(1)) if found else None,
                                       f"invalid TOML: {message}",
                                       "check quotes and brackets on that line")]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(path, 1, "a Hugo config must be a mapping of settings")])
    return Located(_lower_keys(data), _toml_lines(text))


def _lower_keys(data: Any) -> Any:
    """Hugo's config keys are case-insensitive: lowercase every mapping key (not values)."""
    if isinstance(data, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in data.items()}
    return data


_TABLE = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _toml_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """The line of each top-level key and table (and their keys), for error messages: a
    line-based look, enough for the keys digest reads."""
    lines: dict[tuple[str | int, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.split("\n"), start=1):
        if (match := _TABLE.match(line)) is not None:
            table = tuple(p.strip().strip("\"'").lower() for p in match.group(1).split("."))
            lines.setdefault(table, number)
        elif (match := _KEY.match(line)) is not None:
            key = tuple(p.strip("\"'").lower() for p in match.group(1).split("."))
            lines.setdefault((*table, *key), number)
    return lines


def site_settings(path: Path, located: Located) -> dict[str, Any]:
    """The Site settings (as file.py merges them) a Hugo config gives."""
    data = located.data
    picked: dict[str, Any] = {}
    base = data.get("baseurl")
    if isinstance(base, str) and base:
        parts = urlsplit(base)
        if parts.scheme and parts.netloc:
            picked["url"] = f"{parts.scheme}://{parts.netloc}"
            picked["baseurl"] = parts.path.rstrip("/")
        else:  # a path only ('/'): no host to make absolute URLs with
            picked["baseurl"] = base.rstrip("/")
    for ours, theirs in (("title", "title"), ("lang", "languagecode"),
                         ("timezone", "timezone")):
        value = data.get(theirs)
        if value not in (None, ""):
            picked[ours] = str(value)
    params = data.get("params")
    if isinstance(params, dict) and isinstance(params.get("description"), str):
        picked["description"] = params["description"]
    return picked


def hugo_site(path: Path, located: Located, posts: Path) -> HugoSite:
    """The section the posts folder is, its permalink pattern, and the taxonomies."""
    data = located.data
    content_dir = data.get("contentdir", "content")
    content = (path.parent / str(content_dir)).resolve()
    try:
        sections = posts.relative_to(content).parts
    except ValueError:
        raise ConfigError([Problem(path, located.line_of(("contentdir",)),
                                   f"the posts folder {posts} is not inside the site's "
                                   f"content folder {content}",
                                   "point 'posts:' at a section folder such as "
                                   "content/blog")]) from None
    if not sections:
        raise ConfigError([Problem(path, None, "'posts:' names the whole content folder, "
                                   "not a section of it",
                                   "point 'posts:' at a section folder such as "
                                   "content/blog")])
    section = sections[0]
    return HugoSite(section=section, sections=tuple(sections),
                    permalink=_permalink(path, located, section),
                    **_taxonomies(path, located))


def _permalink(path: Path, located: Located, section: str) -> str:
    """The section's pattern: `[permalinks] blog = …` or newer Hugo's `[permalinks.page]`."""
    permalinks = located.data.get("permalinks")
    if permalinks is None:
        return ""
    if not isinstance(permalinks, dict):
        raise ConfigError([Problem(path, located.line_of(("permalinks",)),
                                   "'permalinks' must be a table of section = pattern",
                                   'write e.g. [permalinks] blog = "/:year/:slug/"')])
    page = permalinks.get("page")
    table = page if isinstance(page, dict) else permalinks
    pattern = table.get(section.lower(), "")
    where = ("permalinks", "page", section) if table is page else ("permalinks", section)
    if not isinstance(pattern, str):
        raise ConfigError([Problem(path, located.line_of(where),
                                   f"the permalink of '{section}' must be text",
                                   'write e.g. blog = "/:year/:slug/"')])
    if pattern:
        bad = next((t for t in _TOKEN.findall(pattern) if t not in PERMALINK_TOKENS), None)
        if bad is not None:
            raise ConfigError([Problem(path, located.line_of(where),
                                       f"the permalink '{pattern}' has ':{bad}', which "
                                       "Hugo does not know", "see Hugo's permalinks "
                                       "documentation for the tokens")])
    return pattern


def _taxonomies(path: Path, located: Located) -> dict[str, tuple[str, ...]]:
    taxonomies = located.data.get("taxonomies", DEFAULT_TAXONOMIES)
    if not isinstance(taxonomies, dict) or \
            not all(isinstance(v, str) for v in taxonomies.values()):
        raise ConfigError([Problem(path, located.line_of(("taxonomies",)),
                                   "'taxonomies' must be a table of singular = \"plural\"",
                                   'write e.g. [taxonomies] tag = "tags"')])
    plurals = [v.lower() for v in taxonomies.values() if v]
    categories = tuple(p for p in plurals if p in ("categories", "category"))
    return {"tag_taxonomies": tuple(p for p in plurals if p not in categories),
            "category_taxonomies": categories}
