"""config.yaml (and the site's own _config.yml) validated with pydantic into config.Config.

Every problem is reported with the file, the line and, for a misspelt key, the key that was
probably meant. Kept apart from config.py so that a build whose config files have not
changed since the last good load (config.py keeps it) never imports pydantic (~0.12 s).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import (
    DEFAULT_SCHEDULE,
    LISTEN,
    Author,
    Config,
    DigestSettings,
    Dkim,
    Site,
    SmtpSettings,
    WebSettings,
)
from .errors import ConfigError, Problem, did_you_mean
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
    refresh_minutes: float = Field(default=5, gt=0, le=1440)


class DkimModel(_Strict):
    domain: str
    selector: str
    private_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class DigestModel(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    sender: str | None = Field(default=None, alias="from")
    first_window_days: int = Field(default=7, ge=1, le=3660)
    noun: str = Field(default="post", pattern=r"^[^/\r\n]{1,40}(/[^/\r\n]{1,40})?$")
    templates: Path | None = None
    schedule: str = DEFAULT_SCHEDULE
    grace_hours: float = Field(default=24, ge=0)
    list_id: str | None = None
    unsubscribe_mailto: str | None = None
    dkim: DkimModel | None = None


class SmtpModel(_Strict):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: float = Field(default=30, gt=0)
    concurrency: int = Field(default=4, ge=1, le=200)
    rate: float = Field(default=0, ge=0)
    per_connection: int = Field(default=100, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=50)
    backoff: float = Field(default=2.0, ge=0)
    pause_after: int = Field(default=20, ge=1)
    ca_file: Path | None = None


class WebModel(_Strict):
    base_url: str | None = None
    secret_env: str = Field(default="DIGEST_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    listen: str | None = "127.0.0.1:8080"  # null: `digest run` does not serve the web front


class ConfigModel(_Strict):
    site: SiteModel = SiteModel()
    posts: Path
    output: Path = Path("public")
    state: Path = Path(".digest")
    feeds: FeedsModel = FeedsModel()
    subscribers: Path | None = None
    digest: DigestModel = DigestModel()
    smtp: SmtpModel | None = None
    web: WebModel | None = None


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
    return [f.alias or name for name, f in current.model_fields.items()]


def _problems(path: Path, located: Located, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p[0].isupper()))
        dotted = ".".join(str(p) for p in loc)
        line = located.line_of(loc)
        if item["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = did_you_mean(key, _fields_at(ConfigModel, loc[:-1]))
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


def read_config(path: Path) -> Config:
    """Read config.yaml (and the _config.yml it names); raise ConfigError listing every problem.

    *path* is already resolved.
    """
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
    try:
        if (posts / "_posts").is_dir():  # pointed at the site root: read its _posts like Jekyll
            posts = posts / "_posts"
    except OSError as exc:
        raise ConfigError([Problem(path, located.line_of(("posts",)),
                                   f"posts folder {posts} cannot be read ({exc.strerror})",
                                   "make it readable by the user running digest")]) from None
    if not posts.is_dir():
        raise ConfigError([Problem(path, located.line_of(("posts",)),
                                   f"posts folder {posts} does not exist",
                                   "point 'posts:' at the site's _posts folder")])
    return Config(
        path=path, site=site, posts=posts,
        output=(base / model.output).resolve(), state=(base / model.state).resolve(),
        feed_entries=model.feeds.entries, stylesheet=model.feeds.stylesheet,
        jekyll_config=jekyll_path,
        subscribers=(base / model.subscribers).resolve() if model.subscribers else None,
        digest=_digest_settings(path, located, base, model.digest),
        smtp=_smtp_settings(base, model.smtp), web=_web_settings(path, located, model.web),
        refresh_minutes=model.feeds.refresh_minutes,
    )


def _digest_settings(path: Path, located: Located, base: Path,
                     model: DigestModel) -> DigestSettings:
    problems = []
    if model.sender is not None:
        _name, address = parseaddr(model.sender)
        if "@" not in address or any(c in model.sender for c in "\r\n"):
            problems.append(Problem(path, located.line_of(("digest", "from")),
                                    f"'digest.from' is not an address: {model.sender!r}",
                                    "write it as 'Jobs Board <jobs@example.org>'"))
    if model.schedule != DEFAULT_SCHEDULE and (error := _crontab_error(model.schedule)):
        problems.append(Problem(path, located.line_of(("digest", "schedule")),
                                f"'digest.schedule' is not a crontab line: {error}",
                                "five fields: minute hour day-of-month month day-of-week, "
                                "e.g. '0 9 * * mon' (in the site's timezone)"))
    templates = (base / model.templates).resolve() if model.templates else None
    if templates is not None and not templates.is_dir():  # else silently the built-in ones
        problems.append(Problem(path, located.line_of(("digest", "templates")),
                                f"'digest.templates' names {templates}, which is not a folder",
                                "create it and put your digest.html.j2, digest.txt.j2 or "
                                "subject.txt.j2 in it, or remove the line"))
    if problems:
        raise ConfigError(problems)
    dkim = Dkim(model.dkim.domain, model.dkim.selector, model.dkim.private_key_env) \
        if model.dkim else None
    return DigestSettings(
        sender=model.sender, first_window_days=model.first_window_days,
        noun=_noun(model.noun),
        templates=templates, schedule=model.schedule, grace_hours=model.grace_hours,
        list_id=model.list_id,
        unsubscribe_mailto=model.unsubscribe_mailto, dkim=dkim)


def _crontab_error(expression: str) -> str | None:
    """Why APScheduler (which runs the schedule in `digest run`) cannot read it, if it cannot."""
    # only imported for a non-default schedule; APScheduler 3 ships no type information
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

    try:
        trigger = CronTrigger.from_crontab(expression, timezone=UTC)
    except (ValueError, TypeError) as exc:
        return str(exc)
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        return "that time never comes (no such date)"
    return None


def _noun(text: str) -> tuple[str, str]:
    """'job' → ('job', 'jobs'); 'opportunity/opportunities' for irregular plurals."""
    one, _, many = text.strip().partition("/")
    return one.strip(), (many.strip() or one.strip() + "s")


_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def _smtp_settings(base: Path, model: SmtpModel | None) -> SmtpSettings | None:
    if model is None:
        return None
    values = model.model_dump()
    values["port"] = model.port or _DEFAULT_PORTS[model.security]
    values["ca_file"] = (base / model.ca_file).resolve() if model.ca_file else None
    return SmtpSettings(**values)


def _web_settings(path: Path, located: Located, model: WebModel | None) -> WebSettings | None:
    if model is None:
        return None
    if model.base_url is not None and not model.base_url.startswith(("https://", "http://")):
        raise ConfigError([Problem(path, located.line_of(("web", "base_url")),
                                   f"'web.base_url' must be an http(s) URL: {model.base_url!r}",
                                   "e.g. https://jobs.example.org/digest")])
    if model.listen is not None and not LISTEN.match(model.listen):
        raise ConfigError([Problem(path, located.line_of(("web", "listen")),
                                   f"'web.listen' must be HOST:PORT: {model.listen!r}",
                                   "e.g. 127.0.0.1:8080 or [::1]:8080; null to not serve")])
    return WebSettings(base_url=model.base_url.rstrip("/") if model.base_url else None,
                       secret_env=model.secret_env, listen=model.listen)
