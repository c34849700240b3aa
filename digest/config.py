"""config.yaml (and the site's own _config.yml) loaded once into frozen, typed settings.

configfile.py validates the files (pydantic); every problem is reported with the file, the
line and, for a misspelt key, the key that was probably meant. Relative paths resolve
against the folder of the file that names them, so `digest --config /srv/site/config.yaml`
works from anywhere. The last good load is kept in the state folder (see load_config), as
JSON decoded field by field against these dataclasses' types: a file planted there can at
worst be a cache miss, never run code (it was a pickle once).
"""

from __future__ import annotations

import hashlib
import json
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo

from . import __version__

DEFAULT_SCHEDULE = "0 9 * * mon"
CACHE_NAME = "config.json"
OLD_CACHE_NAME = "config.pickle"  # never read: removed when the JSON one is written

# where the web front listens: HOST:PORT or [IPv6]:PORT
LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")

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
class Dkim:
    domain: str
    selector: str
    private_key_env: str  # the PEM key itself is a secret: only its variable's name is here


@dataclass(frozen=True)
class DigestSettings:
    """How digests look and when they go; `sender` is None until `digest: from` is set."""

    sender: str | None = None  # "Jobs Board <jobs@example.org>", as written
    first_window_days: int = 7
    noun: tuple[str, str] = ("post", "posts")  # what the site lists: "job/jobs"
    templates: Path | None = None  # a folder whose files override the built-in templates
    schedule: str = DEFAULT_SCHEDULE  # crontab line, in the site's timezone
    grace_hours: float = 24  # a digest missed by more than this (daemon down) is skipped
    list_id: str | None = None
    unsubscribe_mailto: str | None = None
    dkim: Dkim | None = None


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how mail is relayed; the password is read from `password_env` at send time."""

    host: str
    port: int
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None
    password_env: str | None = None
    timeout: float = 30
    concurrency: int = 4
    rate: float = 0  # messages per second over all connections; 0 = unlimited
    per_connection: int = 100
    max_attempts: int = 5
    backoff: float = 2.0  # first retry delay in seconds; doubles each attempt, with jitter
    pause_after: int = 20  # consecutive failed deliveries before the run pauses itself
    retry_minutes: float = 5  # `digest run` retries deferred mail after this; doubling, ≤ 1 h
    give_up_days: float = 5  # deferred this long after the digest was made: failed for good
    ca_file: Path | None = None  # trust this CA bundle instead of the system's


@dataclass(frozen=True)
class WebSettings:
    base_url: str | None = None  # public address of the unsubscribe and preferences pages
    secret_env: str = "DIGEST_SECRET"
    listen: str | None = "127.0.0.1:8080"  # None: `digest run` does not serve it


@dataclass(frozen=True)
class Limits:
    """Bounds on every input, checked before it is parsed (`limits:` in config.yaml), so one
    hostile file is rejected at its line instead of exhausting memory or time for all."""

    post_bytes: int = 8 * 2**20  # one post file; the largest real post we know is 14 KB
    subscribers_bytes: int = 256 * 2**20  # the subscribers file (100,000 entries: ~10 MB)
    yaml_nodes: int = 100_000  # values in one front matter or subscriber entry, aliases expanded
    tags: int = 2_000  # tags plus categories of one post
    tag_length: int = 256  # characters in one tag or category


DEFAULT_LIMITS = Limits()


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
    subscribers: Path | None = None
    digest: DigestSettings = DigestSettings()
    smtp: SmtpSettings | None = None  # None: mail goes to the Maildir outbox under state
    web: WebSettings | None = None
    refresh_minutes: float = 5  # `digest run` rebuilds the feeds this often, besides on changes
    limits: Limits = DEFAULT_LIMITS



def load_config(path: Path) -> Config:
    """Read config.yaml (and the _config.yml it names); raise ConfigError listing every problem.

    Validating imports pydantic, which alone costs more than a build of an unchanged site;
    so the last good load is kept in the state folder and reused while both files, and
    digest's config code, are byte for byte the same. Bytes, not mtimes: an edit within one
    mtime tick is still seen. Anything else is read again in full (configfile.py), so every
    error is reported exactly as without the cache, and an error is never kept.
    """
    path = path.resolve()
    place = _cache_place(path)
    if place is not None:
        cached = _cached(place, path)
        if cached is not None:
            return cached
    from .configfile import read_config

    config = read_config(path)
    if place is not None:
        _remember(place, path, config, read_config)
    return config


@dataclass(frozen=True)
class _Place:
    """Where the cache of a config file lives, and where its posts folder was named."""

    file: Path
    posts_root: Path


def _cache_place(path: Path) -> _Place | None:
    """The cache file in the state folder config.yaml names: a plain YAML read, no checks."""
    import yaml

    from .yamlsource import VALUE_ERRORS, load_bounded

    try:  # bounded: this plain read comes before the checked one (configfile.py)
        data = load_bounded(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, *VALUE_ERRORS):
        return None
    if not isinstance(data, dict):
        return None
    state, posts = data.get("state", ".digest"), data.get("posts")
    if not isinstance(state, str) or not isinstance(posts, str):
        return None
    return _Place((path.parent / state).resolve() / CACHE_NAME, (path.parent / posts).resolve())


def posts_folder_hint(path: Path) -> Path | None:
    """The posts folder config.yaml most likely names, from a plain read with no checks:
    enough to start scanning it (scan.py) while the config is loaded and validated."""
    place = _cache_place(path.resolve())
    return None if place is None else _posts_folder(place.posts_root)


def _key(path: Path, jekyll_config: Path | None) -> tuple[str, ...] | None:
    """What a loaded config depends on: digest's config code and both files' bytes."""
    digest = hashlib.sha256(__version__.encode())
    here = Path(__file__).parent
    try:
        for file in (here / "config.py", here / "configfile.py", path, jekyll_config):
            if file is not None:
                digest.update(str(file).encode() + b"\0" + file.read_bytes() + b"\0")
    except OSError:
        return None
    return (str(path), digest.hexdigest())


def _posts_folder(root: Path) -> Path:
    """As read_config picks it: the site root's _posts folder if it has one."""
    try:
        return root / "_posts" if (root / "_posts").is_dir() else root
    except OSError:  # an unreadable folder: the reading itself says so, with its path
        return root


class _Miss(Exception):
    """The cache file does not hold a Config of this version's shape."""


def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value  # str, int, float, bool, None


def _decode(kind: Any, value: Any) -> Any:
    """*value* (parsed JSON) as the type *kind*, checked all the way down; _Miss if not."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]  # ours have one other
        return _decode(inner, value)
    if isinstance(kind, type) and is_dataclass(kind):
        hints = get_type_hints(kind)
        names = [f.name for f in fields(kind)]
        if not isinstance(value, dict) or sorted(value) != sorted(names):
            raise _Miss
        return kind(**{name: _decode(hints[name], value[name]) for name in names})
    if kind is Path and isinstance(value, str):
        return Path(value)
    if origin is tuple and isinstance(value, list):
        args = get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in value)
        if len(args) != len(value):
            raise _Miss
        return tuple(_decode(a, item) for a, item in zip(args, value, strict=True))
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return value  # an int stays one (JSON keeps 24 and 24.0 apart), as it was read
    if kind in (str, int, bool) and type(value) is kind:
        return value
    raise _Miss


def _cached(place: _Place, path: Path) -> Config | None:
    try:
        entry: Any = json.loads(place.file.read_bytes())
        key, config = entry["key"], _decode(Config, entry["config"])
    except (OSError, ValueError, TypeError, KeyError, _Miss):  # unreadable or outdated: a miss
        return None
    if not isinstance(config, Config) or key != list(_key(path, config.jekyll_config) or ()):
        return None
    posts = _posts_folder(place.posts_root)  # the folder may have come or gone since
    if posts != config.posts or not posts.is_dir():
        return None
    templates = config.digest.templates  # checked by read_config, and may have gone since
    if templates is not None and not templates.is_dir():
        return None
    return config


def _remember(place: _Place, path: Path, config: Config,
              read_config: Callable[[Path], Config]) -> None:
    """Keep *config* if the files it came from held still while it was read (else: a miss)."""
    if not place.file.parent.is_dir():  # the first build creates the state folder
        return
    key = _key(path, config.jekyll_config)
    if key is None or read_config(path) != config or _key(path, config.jekyll_config) != key:
        return
    from .errors import DigestError
    from .writer import write_if_changed

    encoded = _encode(config)
    try:
        if _decode(Config, json.loads(json.dumps(encoded))) != config:
            return  # would not come back the same: never cache what would load differently
    except _Miss:
        return
    data = json.dumps({"key": list(key), "config": encoded}, sort_keys=True)
    try:
        write_if_changed(place.file, data.encode(), mode=0o600)  # atomic: never half a file
        place.file.with_name(OLD_CACHE_NAME).unlink(missing_ok=True)
    except (OSError, DigestError):
        pass  # only a cache: the next command validates the config again
