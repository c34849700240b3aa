"""config.yaml (and the site's own _config.yml) loaded once into frozen, typed settings.

pydantic validates the shape; every problem is reported with the file, the line and, for a
misspelt key, the key that was probably meant. Relative paths resolve against the folder of
the file that names them, so `digest --config /srv/site/config.yaml` works from anywhere.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError, Problem
from .yamlsource import Located, load_located


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthorModel(_Strict):
    name: str | None = None
    email: str | None = None
    uri: str | None = None


class SiteModel(_Strict):
    jekyll_config: Path | None = None
    url: str | None = None
    baseurl: str | None = None
    title: str | None = None
    description: str | None = None
    timezone: str | None = None
    permalink: str | None = None
    excerpt_separator: str | None = None
    author: str | AuthorModel | None = None
    lang: str | None = None


class FeedsModel(_Strict):
    entries: int = Field(default=20, ge=1, le=10_000)
    stylesheet: bool = True


class ConfigModel(_Strict):
    site: SiteModel = SiteModel()
    posts: Path
    output: Path = Path("public")
    state: Path = Path(".digest")
    feeds: FeedsModel = FeedsModel()


@dataclass(frozen=True)
class Author:
    name: str
    email: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class Site:
    """What a post's URL, date and excerpt depend on, merged from both config files."""

    url: str = ""
    baseurl: str = ""
    title: str = "Posts"
    description: str = ""
    timezone: str = "UTC"
    permalink: str = "date"
    excerpt_separator: str = "\n\n"
    author: Author | None = None
    lang: str = "en"
    markdown_ext: tuple[str, ...] = ("markdown", "mkdown", "mkdn", "mkd", "md")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def root(self) -> str:
        """Absolute address of the site's home, without a trailing slash."""
        return (self.url.rstrip("/") + "/" + self.baseurl.strip("/")).rstrip("/")


@dataclass(frozen=True)
class Config:
    path: Path
    site: Site
    posts: Path
    output: Path
    state: Path
    feed_entries: int = 20
    stylesheet: bool = True
    # the site's own _config.yml, so that editing it invalidates cached post readings
    jekyll_config: Path | None = None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(choices))


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the (sub)model a pydantic error location points into."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            break
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            break
        current = nested[0]
    return list(current.model_fields)


def _problems(path: Path, located: Located, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p[0].isupper()))
        dotted = ".".join(str(p) for p in loc)
        line = located.line_of(loc)
        if item["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = _suggest(key, _fields_at(ConfigModel, loc[:-1]))
            problems.append(Problem(path, line, f"unknown key '{dotted}'", hint))
        elif item["type"] == "missing":
            problems.append(Problem(path, line, f"missing key '{dotted}'", "add it"))
        else:
            problems.append(Problem(path, line, f"'{dotted}': {item['msg']}"))
    return problems


_JEKYLL_KEYS = ("url", "baseurl", "title", "description", "timezone", "permalink",
                "excerpt_separator", "author", "lang")


def _jekyll_settings(path: Path) -> dict[str, Any]:
    """The site settings a Jekyll _config.yml gives; every other key there is Jekyll's business."""
    data = load_located(path).data
    if not isinstance(data, dict):
        raise ConfigError([Problem(path, 1, "a Jekyll _config.yml must be a mapping")])
    picked = {k: data[k] for k in _JEKYLL_KEYS if data.get(k) not in (None, "")}
    if "lang" not in picked and isinstance(data.get("locale"), str):
        picked["lang"] = data["locale"]
    if isinstance(data.get("markdown_ext"), str):
        picked["markdown_ext"] = tuple(e.strip() for e in data["markdown_ext"].split(","))
    return picked


def _author(value: Any) -> Author | None:
    if isinstance(value, str) and value.strip():
        return Author(value.strip())
    if isinstance(value, AuthorModel | dict):
        raw = value.model_dump() if isinstance(value, AuthorModel) else value
        if raw.get("name"):
            return Author(str(raw["name"]), raw.get("email") or None, raw.get("uri") or None)
    return None


def load_config(path: Path) -> Config:
    """Read config.yaml (and the _config.yml it names); raise ConfigError listing every problem."""
    path = path.resolve()
    located = load_located(path)
    if not isinstance(located.data, dict):
        raise ConfigError([Problem(path, 1, "config must be a mapping of keys to values")])
    try:
        model = ConfigModel.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(_problems(path, located, exc)) from None
    base = path.parent
    settings: dict[str, Any] = {}
    jekyll_path = None
    if model.site.jekyll_config is not None:
        jekyll_path = (base / model.site.jekyll_config).resolve()
        settings.update(_jekyll_settings(jekyll_path))
    ours = model.site.model_dump(exclude_none=True, exclude={"jekyll_config"})
    settings.update(ours)
    author = _author(settings.pop("author", None))
    # YAML may give numbers or dates for text settings (title: 2019); Site holds text
    settings = {k: str(v) if k in _JEKYLL_KEYS else v
                for k, v in settings.items() if v is not None}
    if author is not None:
        settings["author"] = author
    if "lang" in settings:
        settings["lang"] = settings["lang"].replace("_", "-")
    site = Site(**settings)
    try:
        site.tz  # noqa: B018 - validate now, not at the first post
    except (ZoneInfoNotFoundError, ValueError):
        line = located.line_of(("site", "timezone"))
        raise ConfigError([Problem(path, line, f"unknown timezone '{site.timezone}'",
                                   "use an IANA name such as America/New_York")]) from None
    posts = (base / model.posts).resolve()
    if (posts / "_posts").is_dir():  # pointed at the site root: read its _posts like Jekyll
        posts = posts / "_posts"
    if not posts.is_dir():
        raise ConfigError([Problem(path, located.line_of(("posts",)),
                                   f"posts folder {posts} does not exist",
                                   "point 'posts:' at the site's _posts folder")])
    return Config(
        path=path, site=site, posts=posts,
        output=(base / model.output).resolve(), state=(base / model.state).resolve(),
        feed_entries=model.feeds.entries, stylesheet=model.feeds.stylesheet,
        jekyll_config=jekyll_path,
    )
