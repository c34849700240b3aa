"""config.yaml (and the site's own _config.yml) validated with pydantic into settings.Config.

Every problem is reported with the file, the line and, for a misspelt key, the key that was
probably meant. Kept apart from cache.py so that a build whose config files have not
changed since the last good load (cache.py keeps it) never imports pydantic (~0.12 s).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from ..errors import ConfigError, Problem, did_you_mean
from ..util.yamlsource import Located, load_located
from .jekyllfeed import jekyll_feed_settings
from .kramdownconfig import kramdown_settings
from .settings import (
    DEFAULT_FEED_ENTRIES,
    DEFAULT_SCHEDULE,
    LISTEN,
    NO_POSTS_FOLDER,
    AdminSettings,
    Author,
    BouncesSettings,
    Config,
    DigestSettings,
    Dkim,
    FeedSettings,
    FeedSource,
    ImapSettings,
    Limits,
    SignupSettings,
    Site,
    SmtpSettings,
    Webhooks,
    WebSettings,
)


def _not_a_flag(value: Any) -> Any:
    # YAML reads `yes`/`on`/`true` as booleans, and pydantic would take them as 1
    if isinstance(value, bool):
        raise ValueError("a number is needed here, not yes/no or true/false")
    return value


# numbers as YAML gives them (24, 24.0, "24"); a fraction where a whole number is needed,
# inf/nan and yes/no are refused at load rather than handed to a library that chokes on them
Whole = Annotated[int, BeforeValidator(_not_a_flag)]
Number = Annotated[float, BeforeValidator(_not_a_flag), Field(allow_inf_nan=False)]

def _rate(value: float) -> float:
    if 0 < value < MIN_RATE:
        raise ValueError(f"a rate under {MIN_RATE} messages per second would take days")
    return value


# APScheduler turns the grace period into a timedelta, which ends at 999,999,999 days;
# a year is far past any use (a digest late by more than that is stale news anyway)
MAX_GRACE_HOURS = 8784
# a rate under one message per 100 s would spread one digest over days: surely a typo
MIN_RATE = 0.01


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthorModel(_Strict):
    name: str | None = None
    email: str | None = None
    uri: str | None = None


class SiteModel(_Strict):
    jekyll_config: Path | None = None
    hugo_config: Path | None = None  # a Hugo site's hugo.toml instead (config/hugoconfig.py)
    url: str | None = None
    baseurl: str | None = None
    title: str | None = None
    description: str | None = None
    timezone: str | None = None
    permalink: str | None = None
    excerpt_separator: str | None = None
    author: str | AuthorModel | None = None
    lang: str | None = None


def _hub_url(value: str) -> str:
    # the hub is POSTed to after every build: a typo must fail at load, not at each ping
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if (parts.scheme not in ("https", "http") or not parts.hostname
            or any(c.isspace() or ord(c) < 32 for c in value) or len(value) > 2000):
        raise ValueError(f"a WebSub hub must be an http(s) URL, not {value!r}")
    return value


class FeedsModel(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    # default: the _config.yml's jekyll-feed posts_limit (see jekyllfeed.py), else this
    entries: Whole = Field(default=DEFAULT_FEED_ENTRIES, ge=1, le=10_000)
    # feed.xsl: off by default since Chromium 156 dropped XSLT; feeds.html is the page now
    stylesheet: bool = False
    # under 1/60 (a second) APScheduler's interval would silently become one second
    refresh_minutes: Number = Field(default=5, ge=1 / 60, le=1440)
    # `json` would shadow BaseModel.json
    json_feed: bool = Field(default=False, alias="json")
    hub: Annotated[str, AfterValidator(_hub_url)] | None = None


class DkimModel(_Strict):
    domain: str
    selector: str
    private_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class DigestModel(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    sender: str | None = Field(default=None, alias="from")
    first_window_days: Whole = Field(default=7, ge=1, le=3660)
    noun: str = Field(default="post", pattern=r"^[^/\r\n]{1,40}(/[^/\r\n]{1,40})?$")
    templates: Path | None = None
    schedule: str = DEFAULT_SCHEDULE
    grace_hours: Number = Field(default=24, ge=0, le=MAX_GRACE_HOURS)
    list_id: str | None = None
    unsubscribe_mailto: str | None = None
    dkim: DkimModel | None = None
    clip_bytes: Whole = Field(default=100_000, ge=10_000, le=10_000_000)


class SmtpModel(_Strict):
    host: str
    port: Whole | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # seconds per SMTP step; the daemon's stop waits this + 10 s, so an hour is the ceiling
    timeout: Number = Field(default=30, ge=0.1, le=3600)
    concurrency: Whole = Field(default=4, ge=1, le=200)
    rate: Annotated[Number, AfterValidator(_rate)] = Field(default=0, ge=0)
    per_connection: Whole = Field(default=100, ge=1)
    max_attempts: Whole = Field(default=5, ge=1, le=50)
    backoff: Number = Field(default=2.0, ge=0)
    pause_after: Whole = Field(default=20, ge=1)
    # the daemon's retry waits this, doubling to an hour; past a day it is not a retry (and
    # doubled often enough, past timedelta's end)
    retry_minutes: Number = Field(default=5, gt=0, le=1440)
    give_up_days: Number = Field(default=5, gt=0, le=366)
    lease_seconds: Number = Field(default=60, ge=1, le=3600)
    claim_batch: Whole = Field(default=200, ge=1, le=100_000)
    pipelining: bool = True
    ca_file: Path | None = None


class WebModel(_Strict):
    base_url: str | None = None
    secret_env: str = Field(default="DIGEST_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    listen: str | None = "127.0.0.1:8080"  # null: `digest run` does not serve the web front


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class ImapModel(_Strict):
    host: str
    port: Whole | None = Field(default=None, ge=1, le=65535)
    username: str
    password_env: EnvName
    folder: str = Field(default="INBOX", min_length=1, max_length=200)
    security: Literal["tls", "starttls"] = "tls"
    ca_file: Path | None = None
    timeout: Number = Field(default=30, ge=0.1, le=3600)


class SesModel(_Strict):
    topics: list[str] = []


class MailgunModel(_Strict):
    signing_key_env: EnvName


class PostmarkModel(_Strict):
    username: str = Field(min_length=1)
    password_env: EnvName


class WebhooksModel(_Strict):
    ses: SesModel | None = None
    mailgun: MailgunModel | None = None
    postmark: PostmarkModel | None = None


class BouncesModel(_Strict):
    return_path: str | None = None
    maildir: Path | None = None
    imap: ImapModel | None = None
    every_minutes: Number = Field(default=15, ge=1, le=1440)
    soft_limit: Whole = Field(default=3, ge=1, le=100)
    webhooks: WebhooksModel = WebhooksModel()


class SignupModel(_Strict):
    confirm_hours: Number = Field(default=48, ge=0.1, le=24 * 90)
    per_ip_per_hour: Whole = Field(default=5, ge=1, le=100_000)
    per_address_per_hour: Whole = Field(default=3, ge=1, le=100)
    per_hour: Whole = Field(default=200, ge=1, le=1_000_000)
    welcome: bool = True


class AdminModel(_Strict):
    password_hash_env: EnvName = "DIGEST_ADMIN_PASSWORD_HASH"
    user: str = Field(default="admin", min_length=1, max_length=100)
    # a header a reverse proxy sets after authenticating the owner (X-Forwarded-User);
    # trusted instead of the password: only behind a proxy that strips it from clients
    trust_proxy_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,100}$")
    session_hours: Number = Field(default=12, ge=0.05, le=24 * 30)
    test_address: str | None = None
    logins_per_ip: Whole = Field(default=10, ge=1, le=10_000)
    logins_overall: Whole = Field(default=30, ge=1, le=100_000)
    login_window_minutes: Number = Field(default=15, ge=1, le=24 * 60)


class LimitsModel(_Strict):
    """Bounds on hostile input (config.Limits); raise one only if a real file needs it."""

    post_bytes: int = Field(default=Limits.post_bytes, ge=1024)
    subscribers_bytes: int = Field(default=Limits.subscribers_bytes, ge=1024)
    yaml_nodes: int = Field(default=Limits.yaml_nodes, ge=100, le=100_000_000)
    tags: int = Field(default=Limits.tags, ge=1)
    tag_length: int = Field(default=Limits.tag_length, ge=1)


# --- feed sources (issue 16) ---------------------------------------------------------------
def _feed_url(value: str) -> str:
    # fetched on every build: a typo must fail at load, naming the line
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if (parts.scheme not in ("https", "http") or not parts.hostname
            or any(c.isspace() or ord(c) < 32 for c in value) or len(value) > 2000):
        raise ValueError(f"a feed source must be an http(s) URL, not {value!r}")
    return value


class SourceModel(_Strict):
    feed: Annotated[str, AfterValidator(_feed_url)]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    every_minutes: Number = Field(default=30, ge=5, le=7 * 1440)  # polite: not under 5
    tags: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=100)


def _sources(path: Path, located: Located, models: list[SourceModel]) -> tuple[FeedSource, ...]:
    seen: set[str] = set()
    for index, model in enumerate(models):
        if model.name in seen:
            raise ConfigError([Problem(path, located.line_of(("sources", index, "name")),
                                       f"two feed sources are named '{model.name}'",
                                       "give each source its own name")])
        seen.add(model.name)
    return tuple(FeedSource(m.name, m.feed, m.every_minutes, tuple(m.tags)) for m in models)


# --- end feed sources ----------------------------------------------------------------------


class ConfigModel(_Strict):
    site: SiteModel = SiteModel()
    posts: Path | None = None  # required unless `sources:` gives every post
    output: Path = Path("public")
    state: Path = Path(".digest")
    database_env: EnvName | None = None  # the variable with a PostgreSQL URL (state/open.py)
    # how long a lost connection to that database is retried before a command fails
    database_wait_seconds: Number = Field(default=300, ge=0, le=86_400)
    feeds: FeedsModel = FeedsModel()
    subscribers: Path | None = None
    digest: DigestModel = DigestModel()
    smtp: SmtpModel | None = None
    web: WebModel | None = None
    limits: LimitsModel = LimitsModel()
    bounces: BouncesModel | None = None
    signup: SignupModel | None = None
    admin: AdminModel | None = None
    sources: list[SourceModel] = Field(default_factory=list, max_length=100)


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


def _field_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> FieldInfo | None:
    """The pydantic field an error location names, if it names one."""
    current: Any = model
    for index, part in enumerate(loc):
        fields: dict[str, FieldInfo] = {(f.alias or name): f
                                        for name, f in current.model_fields.items()}
        field = fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        if index == len(loc) - 1:
            return field
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        current = nested[0]
    return None


def _expected(field: FieldInfo | None) -> str:
    """What a number or yes-or-no setting takes, from its declaration: the fix for a bad
    value."""
    if field is None:
        return ""
    # Whole | None is Optional[Annotated[int, ...]]: look through both wrappers
    kinds = {get_args(t)[0] if get_origin(t) is Annotated else t
             for t in (field.annotation, *get_args(field.annotation))}
    if bool in kinds:
        return f"write true or false (the default is {str(field.default).lower()})"
    if int in kinds:
        kind = "a whole number"
    elif float in kinds:
        kind = "a number"
    else:
        return ""
    bounds = []
    for item in field.metadata:
        for attr, words in (("ge", "at least"), ("gt", "more than"),
                            ("le", "at most"), ("lt", "less than")):
            if getattr(item, attr, None) is not None:
                bounds.append(f"{words} {getattr(item, attr):g}")
    example = f", e.g. {field.default:g}" if isinstance(field.default, int | float) else ""
    return f"write {kind}" + (" " + " and ".join(bounds) if bounds else "") + example


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
            hint = _expected(_field_at(ConfigModel, loc))
            message = item["msg"].removeprefix("Value error, ")
            problems.append(Problem(path, line, f"'{dotted}': {message}", hint))
    return problems


_JEKYLL_KEYS = ("url", "baseurl", "title", "description", "timezone", "permalink",
                "excerpt_separator", "author", "lang")


def _jekyll_settings(path: Path, located: Located) -> dict[str, Any]:
    """The site settings a Jekyll _config.yml gives; every other key there is Jekyll's business."""
    data = located.data
    if not isinstance(data, dict):
        raise ConfigError([Problem(path, 1, "a Jekyll _config.yml must be a mapping")])
    picked = {k: data[k] for k in _JEKYLL_KEYS if data.get(k) not in (None, "")}
    if "lang" not in picked and isinstance(data.get("locale"), str):
        picked["lang"] = data["locale"]
    if isinstance(data.get("markdown_ext"), str):
        picked["markdown_ext"] = tuple(e.strip() for e in data["markdown_ext"].split(","))
    picked["kramdown"] = kramdown_settings(path, located)
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
        problems = _problems(path, located, exc)
        if "posts" not in located.data and not located.data.get("sources"):
            problems.append(_no_posts(path))  # said at once, with the other mistakes
        raise ConfigError(problems) from None
    base = path.parent
    site, jekyll_path, jekyll = _site(path, located, model)
    feeds, entries = jekyll_feed_settings(jekyll_path, jekyll) \
        if jekyll_path is not None and jekyll is not None \
        else (FeedSettings(), DEFAULT_FEED_ENTRIES)
    if "entries" in model.feeds.model_fields_set:  # config.yaml's, said outright, wins
        entries = model.feeds.entries
    state = (base / model.state).resolve()
    if model.posts is not None:
        posts = _posts(path, located, (base / model.posts).resolve())
    elif model.sources:  # a site made of feeds only: an empty folder of our own stands in
        posts = _no_posts_folder(path, state)
    else:
        raise ConfigError([_no_posts(path)])
    hugo_path = None
    if model.site.hugo_config is not None:  # Hugo's rules read the posts (posts/hugo.py)
        site, hugo_path = _hugo(path, located, model, site, posts)
    return Config(
        path=path, site=site, posts=posts,
        output=(base / model.output).resolve(), state=state, database_env=model.database_env,
        database_wait_seconds=model.database_wait_seconds,
        feed_entries=entries, feeds=feeds, stylesheet=model.feeds.stylesheet,
        jekyll_config=jekyll_path, hugo_config=hugo_path,
        subscribers=(base / model.subscribers).resolve() if model.subscribers else None,
        digest=_digest_settings(path, located, base, model.digest),
        smtp=_smtp_settings(base, model.smtp), web=_web_settings(path, located, model.web),
        refresh_minutes=model.feeds.refresh_minutes,
        json_feed=model.feeds.json_feed, hub=model.feeds.hub,
        limits=Limits(**model.limits.model_dump()),
        bounces=_bounces_settings(path, located, base, model.bounces),
        signup=SignupSettings(**model.signup.model_dump()) if model.signup else None,
        admin=_admin_settings(path, located, model),
        sources=_sources(path, located, model.sources),
    )


def _site(path: Path, located: Located,
          model: ConfigModel) -> tuple[Site, Path | None, Located | None]:
    """The site's settings: _config.yml's, if named, under config.yaml's `site:`; and the
    _config.yml's path and contents."""
    settings: dict[str, Any] = {}
    jekyll_path = jekyll = source_path = source = None
    if model.site.jekyll_config is not None and model.site.hugo_config is not None:
        raise ConfigError([Problem(path, located.line_of(("site", "hugo_config")),
                                   "'site' names both a jekyll_config and a hugo_config",
                                   "keep the one of the generator that builds the site")])
    if model.site.hugo_config is not None:
        from .hugoconfig import load_hugo_config, site_settings

        hugo_path = (path.parent / model.site.hugo_config).resolve()
        source_path, source = hugo_path, load_hugo_config(hugo_path)
        settings.update(site_settings(hugo_path, source))
    elif model.site.jekyll_config is not None:
        jekyll_path = source_path = (path.parent / model.site.jekyll_config).resolve()
        jekyll = source = load_located(jekyll_path)
        settings.update(_jekyll_settings(jekyll_path, jekyll))
    ours = model.site.model_dump(exclude_none=True, exclude={"jekyll_config", "hugo_config"})
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
        # blame the file the name came from: config.yaml's site: wins over _config.yml
        if model.site.timezone is None and source_path is not None and source is not None:
            where, line = source_path, source.line_of(("timezone",))
        else:
            where, line = path, located.line_of(("site", "timezone"))
        raise ConfigError([Problem(where, line, f"unknown timezone '{site.timezone}'",
                                   "use an IANA name such as America/New_York")]) from None
    return site, jekyll_path, jekyll


def _hugo(path: Path, located: Located, model: ConfigModel, site: Site,
          posts: Path) -> tuple[Site, Path]:
    """The site read with Hugo's rules: its section, permalink and taxonomies added."""
    from .hugoconfig import hugo_site, load_hugo_config

    assert model.site.hugo_config is not None
    hugo_path = (path.parent / model.site.hugo_config).resolve()
    hugo = hugo_site(hugo_path, load_hugo_config(hugo_path), posts)
    return replace(site, hugo=hugo, excerpt_separator="<!--more-->"), hugo_path


def _no_posts(path: Path) -> Problem:
    return Problem(path, None, "missing key 'posts'", "add it: the site's _posts folder (or a "
                   "Hugo section; or 'sources:' feeds, for a site made of feeds only)")


def _no_posts_folder(path: Path, state: Path) -> Path:
    """The empty stand-in for the posts folder of a site made of feed sources only."""
    folder = state / NO_POSTS_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError([Problem(path, None, f"cannot make {folder} ({exc.strerror})",
                                   "make the state folder writable by the user running "
                                   "digest")]) from None
    return folder


def _posts(path: Path, located: Located, posts: Path) -> Path:
    """The posts folder: `posts:`, or its _posts if it names the site's root."""
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
    return posts


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
        unsubscribe_mailto=model.unsubscribe_mailto, dkim=dkim, clip_bytes=model.clip_bytes)


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
    found = LISTEN.match(model.listen) if model.listen is not None else None
    if model.listen is not None and (not found or int(found["port"]) > 65535):
        raise ConfigError([Problem(path, located.line_of(("web", "listen")),
                                   f"'web.listen' must be HOST:PORT: {model.listen!r}",
                                   "a port from 0 to 65535, e.g. 127.0.0.1:8080 or [::1]:8080; "
                                   "null to not serve")])
    return WebSettings(base_url=model.base_url.rstrip("/") if model.base_url else None,
                       secret_env=model.secret_env, listen=model.listen)


def _admin_settings(path: Path, located: Located, model: ConfigModel) -> AdminSettings | None:
    admin = model.admin
    if admin is None:
        return None
    test = admin.test_address
    if test is not None:
        _name, address = parseaddr(test)
        if address != test.strip() or "@" not in address or any(c in address for c in "\r\n"):
            raise ConfigError([Problem(path, located.line_of(("admin", "test_address")),
                                       f"'admin.test_address' must be a bare address: {test!r}",
                                       "e.g. owner@example.org")])
    return AdminSettings(**{**admin.model_dump(),
                            "test_address": test.strip() if test else None})


def _bounces_settings(path: Path, located: Located, base: Path,
                      model: BouncesModel | None) -> BouncesSettings | None:
    if model is None:
        return None
    if model.return_path is not None:
        _name, address = parseaddr(model.return_path)
        local, _, domain = address.rpartition("@")
        if (address != model.return_path.strip() or not local or "." not in domain
                or "+" in local or len(local) > 40):
            raise ConfigError([Problem(
                path, located.line_of(("bounces", "return_path")),
                f"'bounces.return_path' must be a bare address: {model.return_path!r}",
                "e.g. bounces@example.org (no name, no '+': digest adds +TOKEN to it; "
                "at most 40 characters before the @, so the token fits)")])
    if model.maildir is not None and model.imap is not None:
        raise ConfigError([Problem(path, located.line_of(("bounces", "imap")),
                                   "'bounces' names both a maildir and an imap mailbox",
                                   "keep one of them")])
    imap = None
    if model.imap is not None:
        values = model.imap.model_dump()
        values["port"] = model.imap.port or (993 if model.imap.security == "tls" else 143)
        values["ca_file"] = (base / model.imap.ca_file).resolve() if model.imap.ca_file \
            else None
        imap = ImapSettings(**values)
    hooks = model.webhooks
    webhooks = Webhooks(
        ses=hooks.ses is not None, ses_topics=tuple(hooks.ses.topics) if hooks.ses else (),
        mailgun_key_env=hooks.mailgun.signing_key_env if hooks.mailgun else None,
        postmark_username=hooks.postmark.username if hooks.postmark else None,
        postmark_password_env=hooks.postmark.password_env if hooks.postmark else None)
    return BouncesSettings(
        return_path=model.return_path.strip() if model.return_path else None,
        maildir=(base / model.maildir).resolve() if model.maildir else None, imap=imap,
        every_minutes=model.every_minutes, soft_limit=model.soft_limit, webhooks=webhooks)
