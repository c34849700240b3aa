"""The settings digest runs on: frozen, typed dataclasses, one per section of config.yaml.

file.py fills them from config.yaml and the site's own _config.yml (validated with pydantic);
cache.py keeps the last good load. Nothing here reads a file, so every stage can import
these types without loading pydantic or YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

DEFAULT_SCHEDULE = "0 9 * * mon"

# where the web front listens: HOST:PORT or [IPv6]:PORT
LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")

# a site whose posts all come from feed sources has no posts folder: this empty one, in the
# state folder, stands in for it (read_config makes it)
NO_POSTS_FOLDER = "posts"

@dataclass(frozen=True)
class Author:
    name: str
    email: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class HugoSite:
    """How a Hugo site names and files its posts (config/hugoconfig.py reads its hugo.toml)."""

    section: str  # the content section the posts folder is (content/blog: 'blog')
    sections: tuple[str, ...] = ()  # the posts folder below the content folder, by folder
    permalink: str = ""  # the section's permalink pattern; '': Hugo's /:sections/:filename/
    # the site's taxonomies (plural names) whose terms are a post's tags, or its categories
    tag_taxonomies: tuple[str, ...] = ("tags",)
    category_taxonomies: tuple[str, ...] = ("categories",)


@dataclass(frozen=True)
class Kramdown:
    """The `kramdown:` settings of a Jekyll _config.yml that change what a post renders to;
    the defaults are Jekyll's."""

    # left and right single, left and right double quote (smart_quotes: lsquo,rsquo,ldquo,rdquo)
    smart_quotes: tuple[str, str, str, str] = ("\u2018", "\u2019", "\u201c", "\u201d")
    auto_ids: bool = True  # headers get ids
    auto_id_prefix: str = ""
    hard_wrap: bool = False  # True: each line break in a paragraph is a <br />
    footnote_nr: int = 1  # the first footnote's number


JEKYLL_KRAMDOWN = Kramdown()


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
    kramdown: Kramdown = JEKYLL_KRAMDOWN  # how Markdown renders (posts/kramdown.py)
    lang: str = "en"
    markdown_ext: tuple[str, ...] = ("markdown", "mkdown", "mkdn", "mkd", "md")
    hugo: HugoSite | None = None  # None: a Jekyll site (_posts); else Hugo's rules apply

    @property
    def title_quotes(self) -> Kramdown | None:
        """What makes a title's quotes curly in feeds and emails: kramdown's settings on a
        Jekyll site (jekyll-feed smartifies titles), nothing on a Hugo site (Hugo's feeds
        print titles as written)."""
        return self.kramdown if self.hugo is None else None

    @property
    def generator(self) -> str:
        """Whose rules read the posts: 'jekyll' or 'hugo'."""
        return "jekyll" if self.hugo is None else "hugo"

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
    clip_bytes: int = 100_000  # decoded bytes of a digest's HTML part; Gmail clips past 102 KB


@dataclass(frozen=True)
class ImapSettings:
    """An IMAP mailbox bounces arrive in; the password is read from `password_env` when used."""

    host: str
    port: int
    username: str
    password_env: str
    folder: str = "INBOX"
    security: Literal["tls", "starttls"] = "tls"  # TLS always, verified
    ca_file: Path | None = None  # trust this CA bundle instead of the system's
    timeout: float = 30


@dataclass(frozen=True)
class Webhooks:
    """Relays that report bounces by HTTP POST to the web front (/webhooks/NAME)."""

    ses: bool = False  # Amazon SES through SNS: each message's signature is verified
    ses_topics: tuple[str, ...] = ()  # TopicArns accepted; empty: any (still signed by SNS)
    mailgun_key_env: str | None = None  # variable holding Mailgun's webhook signing key
    postmark_username: str | None = None  # Basic auth Postmark is configured to send
    postmark_password_env: str | None = None


@dataclass(frozen=True)
class BouncesSettings:
    """Where bounces, complaints and unsubscribe replies come back, and what they do."""

    # VERP: each message's envelope sender becomes bounces+TOKEN@example.org, the token
    # signed and naming the run and the subscriber; None: the sender's address, as before
    return_path: str | None = None
    maildir: Path | None = None
    imap: ImapSettings | None = None
    every_minutes: float = 15  # `digest run` reads the mailbox this often
    soft_limit: int = 3  # soft bounces in this many digests in a row suppress the address
    webhooks: Webhooks = Webhooks()


@dataclass(frozen=True)
class SignupSettings:
    """Sign-up on the web front with double opt-in; None in Config: no sign-up."""

    confirm_hours: float = 48  # the confirmation link expires after this
    per_ip_per_hour: int = 5  # sign-up requests one IP address may make in an hour
    per_address_per_hour: int = 3  # confirmation emails one address may get in an hour
    per_hour: int = 200  # confirmation emails in all, in an hour
    welcome: bool = True  # send a welcome email once confirmed


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how mail is relayed; the password is read from `password_env` at send time."""

    host: str
    port: int
    security: Literal["starttls", "tls", "none"] = "starttls"
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
    # several senders share a run: each claims claim_batch deliveries at a time, leased for
    # lease_seconds (renewed while it lives); a node silent that long loses them to others
    lease_seconds: float = 60
    claim_batch: int = 200
    # MAIL, RCPT and DATA in one write where the server offers PIPELINING (RFC 2920), and
    # each message's content with the next one's; off for a relay that offers it and then
    # answers each command alone, late
    pipelining: bool = True


@dataclass(frozen=True)
class WebSettings:
    base_url: str | None = None  # public address of the unsubscribe and preferences pages
    secret_env: str = "DIGEST_SECRET"
    listen: str | None = "127.0.0.1:8080"  # None: `digest run` does not serve it


@dataclass(frozen=True)
class AdminSettings:
    """The owner's dashboard at /admin/ on the web front; None in Config: no dashboard.

    The password's argon2 hash is read from the variable `password_hash_env` names (never
    from the file). `trust_proxy_header` names a header (e.g. X-Forwarded-User) a reverse
    proxy sets once it has authenticated the owner: then that header is trusted instead of
    the password, so it is only safe when every request passes through a proxy that strips
    the header from what clients send.
    """

    password_hash_env: str = "DIGEST_ADMIN_PASSWORD_HASH"
    user: str = "admin"
    trust_proxy_header: str | None = None
    session_hours: float = 12  # a login lasts this long
    test_address: str | None = None  # where "send me a test copy" goes; None: no button
    logins_per_ip: int = 10  # login attempts one IP may make per window
    logins_overall: int = 30  # login attempts in all per window
    login_window_minutes: float = 15


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

DEFAULT_FEED_ENTRIES = 20  # entries per feed when neither config file says
JEKYLL_FEED_ENTRIES = 10  # jekyll-feed's own default posts_limit


@dataclass(frozen=True)
class FeedSettings:
    """Which feeds a build writes, and where: jekyll-feed's `feed:` settings in the site's
    _config.yml, so that a site switching to digest keeps every feed's address.

    digest also writes a feed per tag and per category by default, where jekyll-feed
    writes them only when asked: extra files break no one; `tags: false` or
    `categories: []` turn them off.
    """

    path: str = "feed.xml"  # the site's Atom feed, relative to the output folder
    tags: bool = True
    tags_only: tuple[str, ...] | None = None  # None: every tag
    tags_except: tuple[str, ...] = ()
    tags_path: str = "feed/by_tag/"  # a tag feed is tags_path + TAG + '.xml', as jekyll-feed
    categories: tuple[str, ...] | None = None  # None: every category
    excerpt_only: bool = False  # entries carry the summary, not the post


# --- feed sources (issue 16) ---------------------------------------------------------------
@dataclass(frozen=True)
class FeedSource:
    """A feed (RSS, Atom, RDF or JSON Feed) whose entries are published as the site's posts."""

    name: str  # [a-z0-9-]: its folder under state/sources and its name in `digest status`
    url: str
    every_minutes: float = 30  # fetched at most this often; a failing feed backs off further
    tags: tuple[str, ...] = ()  # added to every entry, besides the entry's own categories


# --- end feed sources ----------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    path: Path
    site: Site
    posts: Path
    output: Path
    state: Path
    feed_entries: int = DEFAULT_FEED_ENTRIES  # config.yaml's, else jekyll-feed's posts_limit
    stylesheet: bool = False  # the xml-stylesheet line and feed.xsl (XSLT: not Chromium 156+)
    # the site's own _config.yml, so that editing it invalidates cached post readings
    jekyll_config: Path | None = None
    hugo_config: Path | None = None  # the site's hugo.toml (or config.*), likewise
    subscribers: Path | None = None
    digest: DigestSettings = DigestSettings()
    smtp: SmtpSettings | None = None  # None: mail goes to the Maildir outbox under state
    web: WebSettings | None = None
    refresh_minutes: float = 5  # `digest run` rebuilds the feeds this often, besides on changes
    limits: Limits = DEFAULT_LIMITS
    bounces: BouncesSettings | None = None  # None: nothing reads bounces (`digest check` warns)
    signup: SignupSettings | None = None
    admin: AdminSettings | None = None  # the owner's dashboard (web/admin/)
    feeds: FeedSettings = FeedSettings()  # which feeds, where: jekyll-feed's settings
    json_feed: bool = False  # a JSON Feed 1.1 (.json) beside each Atom feed
    hub: str | None = None  # a WebSub hub: named in every feed, pinged when one changes
    sources: tuple[FeedSource, ...] = ()  # feeds read as posts besides the posts folder
    # the environment variable holding the PostgreSQL URL of the shared state (state/open.py);
    # None: the shared state is SQLite in the state folder
    database_env: str | None = None
    # how long a lost connection to that database is retried (paused through) before failing
    database_wait_seconds: float = 300
