"""`digest check`: everything the configured commands will need, checked before they need it.

The posts and the subscribers file (problems in them reject one post or one entry: exit 1),
then what would make `digest send`, `digest run` or `digest serve` fail (exit 2): no
`digest.from`, a secret missing from the environment, a DKIM key that does not parse, a
template that does not render, a schedule APScheduler cannot read, a value the scheduler or
the SMTP client refuses.

Checks are made by building the real objects, not by re-stating their rules: the mail
settings and layout a send makes (one edition is rendered and one message built, with the
configured templates, overrides included), the jobs the daemon puts in its scheduler (on an
unstarted scheduler with in-memory job stores, so nothing runs and the state database is not
touched), and the SMTP transport and client a send opens. So a value of a type or range one
of them refuses fails here, whichever rule it broke. `probe_smtp` goes one step further and
opens a real connection (EHLO, STARTTLS, AUTH) without sending anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..config import Config
from ..errors import ConfigError, DigestError, Problem

if TYPE_CHECKING:
    from ..edition.layout import MailSettings
    from ..posts.published import Published
    from ..posts.scan import Scan
    from ..state.store import Store

Level = Literal["rejected", "warning", "error", "note", "advice"]
SAMPLE_POSTS = 5  # the newest posts put in the edition rendered to test the templates


@dataclass(frozen=True)
class Finding:
    """One line of the check. rejected/warning: a post or subscriber entry (exit 1);
    error: a command would fail (exit 2); note: what was checked, for the reader;
    advice: a setting worth changing that breaks nothing today (shown as a warning, exit
    unchanged: a site without bounce handling still sends)."""

    level: Level
    text: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: Level, text: object) -> None:
        finding = Finding(level, str(text))
        if finding not in self.findings:  # e.g. one missing secret that two commands need
            self.findings.append(finding)

    def count(self, *levels: Level) -> int:
        return sum(f.level in levels for f in self.findings)

    @property
    def exit_code(self) -> int:
        """2 if a command would fail, 1 if some input would be rejected, else 0."""
        if self.count("error"):
            return 2
        return 1 if self.count("rejected", "warning") else 0


def check(config: Config, *, as_of: datetime, future: bool = False,
          scanned: Scan | None = None) -> Report:
    """Everything `digest check` reports (see the module docstring); raises nothing but
    what loading the state database raises."""
    from ..posts.reader import read_posts
    from ..state.store import Store

    report = Report()
    _database(report, config)
    store = Store.open(config.state)
    try:
        corpus = read_posts(config, store, now=as_of, future=future, scanned=scanned)
        _posts(report, corpus)
        _sources(report, config)
        _subscribers(report, config, corpus)
        if config.subscribers is not None:  # as `digest run`: no subscribers, no digest
            settings = _mail_settings(report, config)
            _secrets(report, config)
            _templates(report, config, store, corpus, settings, as_of)
            _bounces(report, config)
        _feeds_page(report, config, corpus)
        _web(report, config)
        _signup(report, config)
        _admin(report, config)
        _daemon(report, config, as_of)
        _transport(report, config)
    finally:
        store.close()
    return report


def _problems(report: Report, rejected: Sequence[Problem], warnings: Sequence[Problem]) -> None:
    for problem in rejected:
        report.add("rejected", problem)
    for problem in warnings:
        report.add("warning", problem)


def _posts(report: Report, corpus: Published) -> None:
    _problems(report, corpus.rejected, corpus.warnings)
    report.add("note", f"{len(corpus.posts)} posts OK; {len(corpus.rejected)} rejected, "
                       f"{len(corpus.warnings)} warnings")


# --- feed sources (issue 16) ---------------------------------------------------------------
def _sources(report: Report, config: Config) -> None:
    """Each feed source as last fetched (check fetches nothing): a failing one is advice,
    since its last good entries are still published."""
    if not config.sources:
        return
    from ..posts.poll import describe

    for item in describe(config):
        name = f"feed source '{item['name']}' ({item['url']})"
        if item["error"]:
            report.add("advice", f"{name}: the last fetch failed: {item['error']} (last "
                                 f"worked: {item['last_ok'] or 'never'}); its last good "
                                 "entries are still published")
        elif item["redirect"]:
            report.add("advice", f"{name} has moved for good to {item['redirect']}: update "
                                 "its 'feed:' in config.yaml")
        elif item["last_status"] is None:
            report.add("note", f"{name}: not fetched yet (`digest build` fetches it)")
        else:
            report.add("note", f"{name}: {item['entries']} entries")


def _subscribers(report: Report, config: Config, corpus: Published) -> None:
    from ..errors import SubscribersUnreadable
    from ..subscribers.load import load_subscribers

    if config.subscribers is None:
        return
    try:
        found = load_subscribers(config.subscribers, corpus.terms, config.limits)
    except SubscribersUnreadable as exc:
        report.add("rejected", exc)
        return
    _problems(report, found.problems, found.warnings)
    report.add("note", f"{len(found.subscribers)} subscribers OK; {len(found.problems)} "
                       f"skipped, {len(found.warnings)} warnings")


def _errors(report: Report, config: Config, what: str) -> Callable[[BaseException], None]:
    """How a failure of *what* is reported: a DigestError says itself; anything else is a
    value some library refused, which would stop the command the same way."""
    def record(exc: BaseException) -> None:
        if isinstance(exc, ConfigError):
            for problem in exc.problems:
                report.add("error", problem)
        elif isinstance(exc, DigestError):
            report.add("error", f"{config.path}: {exc}")
        else:
            report.add("error", Problem(
                config.path, None, f"{what} would fail: {type(exc).__name__}: {exc}",
                "a value in the config is of a type or range digest cannot use"))
    return record


def _mail_settings(report: Report, config: Config) -> MailSettings:
    """The settings a send builds its messages with; every problem in them reported, and a
    usable stand-in for each, so that the templates are still tried."""
    from ..delivery.session import mail_settings
    from ..edition.message import check_dkim_key
    from ..errors import MessageError

    record = _errors(report, config, "building the digest's messages")
    digest = config.digest
    if not digest.sender:
        record(ConfigError([Problem(config.path, None, "'digest.from' is not set",
                                    "add e.g. digest: {from: 'Jobs Board <jobs@example.org>'}"
                                    )]))
        digest = replace(digest, sender="digest@localhost")
    try:
        settings = mail_settings(replace(config, digest=digest))
    except DigestError as exc:  # the DKIM key's variable
        record(exc)
        settings = mail_settings(replace(config, digest=replace(digest, dkim=None)))
    key = settings.dkim
    if key is not None:
        try:
            check_dkim_key(key)
        except MessageError as exc:
            record(ConfigError([Problem(config.path, None, str(exc),
                                        f"put the PEM private key in "
                                        f"${digest.dkim.private_key_env if digest.dkim else ''}"
                                        )]))
            settings = replace(settings, dkim=None)
        else:
            report.add("note", f"DKIM key for {key.selector}._domainkey.{key.domain} parses")
    return settings


def _secrets(report: Report, config: Config) -> None:
    """The token secret, as a send reads it (the SMTP password: see _transport)."""
    from ..subscribers.tokens import Signer

    web = config.web
    if web is None or web.base_url is None:
        report.add("note", "no web.base_url: digests carry only a mailto unsubscribe, no "
                           "one-click link (Gmail and Yahoo expect one from bulk senders)")
        return
    try:
        Signer.from_env(web.secret_env)
    except DigestError as exc:
        _errors(report, config, "signing links")(exc)


def _sample(config: Config, store: Store, corpus: Published) -> tuple[Any, ...]:
    """DigestPosts of the newest posts, as a digest carries them (or one made up)."""
    from ..edition.layout import DigestPost
    from ..posts.content import plain_title
    from ..posts.ids import absolute
    from ..posts.rendered import render_posts

    site = config.site
    posts = corpus.posts[:SAMPLE_POSTS]
    if not posts:
        return (DigestPost(title="A sample post", url=site.root + "/sample/",
                           date=datetime.now(site.tz), tags=("sample",), categories=(),
                           excerpt="Its first paragraph.",
                           excerpt_html="<p>Its first paragraph.</p>"),)
    rendered = render_posts(config, store, posts, corpus.stats, corpus.posts)
    return tuple(DigestPost(
        title=plain_title(p.title) or p.slug, url=absolute(site, p.url),
        date=p.date.astimezone(site.tz), tags=p.tags, categories=p.categories,
        excerpt=" ".join(rendered[p.path].summary.split()),
        excerpt_html=rendered[p.path].summary_html) for p in posts)


def _templates(report: Report, config: Config, store: Store, corpus: Published,
               settings: MailSettings, as_of: datetime) -> None:
    """Render an edition and build its message for each kind of recipient, as a send does:
    a template's syntax and rendering errors come out with their file and line."""
    from ..edition.layout import Edition, Layout, Recipient
    from ..edition.selection import window

    record = _errors(report, config, "rendering the digest")
    try:
        layout = Layout(settings)
        posts = _sample(config, store, corpus)
        period = window(None, as_of, config.digest.first_window_days)
        base = config.web.base_url if config.web else None
        first_tag = next((t for p in posts for t in p.tags), None)
        for followed in (None, (first_tag,) if first_tag else None):
            archive = f"{base}/archive/sample" if base else None
            rendered = layout.edition(Edition(period.start, period.end, posts, followed,
                                                archive))
            for name, links in (("A Reader", True), (None, False)):
                url = base if links else None
                layout.message(rendered, Recipient(
                    "reader@example.org", name,
                    f"{url}/unsubscribe/sample" if url else None,
                    f"{url}/preferences/sample" if url else None),
                    message_id="<check@example.org>", date=as_of)
    except Exception as exc:  # whatever stops a render stops the send
        record(exc)
        return
    where = f"{config.digest.templates} (and the built-in ones)" \
        if config.digest.templates else "the built-in templates"
    report.add("note", f"templates OK: a digest of {len(posts)} posts rendered with {where}")
    _web_templates(report, config)


def _web_templates(report: Report, config: Config) -> None:
    """The web pages' templates compile (an override with a syntax error breaks its page)."""
    from ..errors import TemplateError
    from ..web.pages import Pages

    if config.web is None or config.digest.templates is None:
        return
    folder = config.digest.templates / "web"
    pages = Pages(config.site, config.digest.templates)
    for path in sorted(folder.glob("*.html.j2")) if folder.is_dir() else []:
        try:
            pages.template(path.name.removesuffix(".html.j2"))
        except TemplateError as exc:
            report.add("error", exc.problems[0])


def _feeds_page(report: Report, config: Config, corpus: Published) -> None:
    """An override of feeds.html.j2 renders: its error would stop every build."""
    from ..errors import TemplateError
    from ..feeds.formats import FeedSpec, feed_paths
    from ..feeds.page import TEMPLATE, page_of, render

    folder = config.digest.templates
    if folder is None or not (folder / TEMPLATE).is_file():
        return
    feeds = [("site", "")] + [("tag", term) for term in sorted(corpus.terms)[:1]]
    specs = [FeedSpec(kind, key, *feed_paths(kind, key, config.feeds), ())
             for kind, key in feeds]
    try:
        render(config, page_of(config, specs, {}))
    except TemplateError as exc:
        report.add("error", exc.problems[0])
        return
    report.add("note", f"feeds page OK: {folder / TEMPLATE} rendered")


def _bounces(report: Report, config: Config) -> None:
    """Whether anything reads what comes back: a list that only grows dead addresses gets
    its sender blocked under Gmail's and Yahoo's bulk-sender rules."""
    bounces = config.bounces
    hooks = bounces.webhooks if bounces else None
    hooked = hooks is not None and bool(hooks.ses or hooks.mailgun_key_env
                                        or hooks.postmark_username)
    reads = bounces is not None and bool(bounces.maildir or bounces.imap or hooked)
    if not reads:
        report.add("advice", f"{config.path}: nothing reads bounces and complaints, so dead "
                             "addresses get a digest every week; set 'bounces:' with a "
                             "maildir, an imap mailbox or a relay's webhooks (README: "
                             "Bounces and complaints)")
    if bounces is None or bounces.return_path is None:
        report.add("advice", f"{config.path}: no 'bounces.return_path', so a bounce is "
                             "matched to its subscriber only by what the report says; set "
                             "it (e.g. bounces@example.org) to give each message its own "
                             "signed return path (VERP)")


def _database(report: Report, config: Config) -> None:
    """The shared state's PostgreSQL database (database_env): its variable set, the server
    reachable, its schema one this digest knows. Only looked at: nothing created."""
    from ..state.open import open_state

    if config.database_env is None:
        return
    try:
        open_state(config, read_only=True).close()
    except Exception as exc:  # every command would stop the same way
        _errors(report, config, "opening the shared state")(exc)


def _web(report: Report, config: Config) -> None:
    """The web front `digest run` (web.listen) and `digest serve` start."""
    from ..util.clock import Clock
    from ..web.server import Front, listen_address

    web = config.web
    if web is None or web.listen is None:
        return
    try:
        listen_address(web.listen)
        Front.for_config(config, Clock())
    except Exception as exc:  # it would stop the daemon at start-up
        _errors(report, config, "starting the web front")(exc)


def _admin(report: Report, config: Config) -> None:
    """The dashboard: served only with the web front, and only with a password's hash."""
    import os

    admin = config.admin
    if admin is None:
        return
    if config.web is None:
        report.add("advice", f"{config.path}: 'admin' is set but there is no 'web' section, "
                             "so no dashboard is served; add 'web:' or remove 'admin'")
        return
    found = os.environ.get(admin.password_hash_env, "").strip()
    if admin.trust_proxy_header is None and not found.startswith("$argon2"):
        report.add("advice", f"{config.path}: admin.password_hash_env names "
                             f"${admin.password_hash_env}, which "
                             + ("is not set" if not found else "holds no argon2 hash")
                             + ": nobody can log in to the dashboard; make one with "
                             "`digest admin-password` and export it")


def _signup(report: Report, config: Config) -> None:
    """Sign-up needs the public address (its links) and the secret (its tokens); its two
    emails are rendered once, so a template's error shows here, not at a visitor's."""
    from ..delivery.session import mail_settings
    from ..edition.notices import Notices

    signup, web = config.signup, config.web
    if signup is None:
        return
    if web is None or not web.base_url:
        report.add("error", f"{config.path}: 'signup:' is set but 'web: base_url:' is not, "
                            "so /subscribe answers 404 (a confirmation needs a link); set "
                            "web: {base_url: https://...}")
        return
    record = _errors(report, config, "building the sign-up emails")
    try:
        notices = Notices(mail_settings(config))
        notices.confirmation(email="reader@example.org", hours=signup.confirm_hours,
                             confirm_url=f"{web.base_url}/subscribe/confirm/sample",
                             expires=datetime.now(config.site.tz))
        notices.welcome(email="reader@example.org", archive_url=None,
                        preferences_url=f"{web.base_url}/preferences/sample",
                        unsubscribe_url=f"{web.base_url}/unsubscribe/sample")
    except Exception as exc:  # whatever stops a render stops every sign-up
        record(exc)
        return
    report.add("note", f"sign-up: {web.base_url}/subscribe (confirmation links work "
                       f"{signup.confirm_hours:g} hours)")


def daemon_jobs(config: Config) -> list[Any]:
    """The jobs `digest run` schedules at start-up, made by the daemon's own code on an
    unstarted scheduler with in-memory job stores: nothing runs, nothing is stored."""
    from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
    from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

    from ..daemon.schedule import STATE_STORE
    from ..daemon.service import Daemon
    from ..util.clock import Clock

    scheduler = AsyncIOScheduler(
        jobstores={"default": MemoryJobStore(), STATE_STORE: MemoryJobStore()}, timezone=UTC)
    chatty = logging.getLogger("apscheduler.scheduler")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # "Adding job tentatively": true, and no news here
    try:
        Daemon(config, Clock()).schedule_on(scheduler)
    finally:
        chatty.setLevel(level)
    return scheduler.get_jobs()  # type: ignore[no-any-return]


def _daemon(report: Report, config: Config, as_of: datetime) -> None:
    from ..daemon.schedule import DIGEST_JOB
    from ..delivery.session import when

    try:
        jobs = {job.id: job for job in daemon_jobs(config)}
    except Exception as exc:  # it would stop `digest run` at start-up
        _errors(report, config, "`digest run` scheduling its jobs")(exc)
        return
    job = jobs.get(DIGEST_JOB)
    if job is None:
        return
    due = job.trigger.get_next_fire_time(None, as_of.astimezone(UTC))
    shown = "never" if due is None else when(due.astimezone(config.site.tz))
    report.add("note", f"schedule '{config.digest.schedule}' ({config.site.timezone}): "
                       f"next digest {shown}")


def _transport(report: Report, config: Config) -> None:
    """The transport a send makes (the SMTP password read from its variable, the CA file
    loaded) and, for SMTP, the client it connects with."""
    from ..delivery.send import make_transport
    from ..delivery.smtp import SmtpTransport

    if config.subscribers is None:
        return
    try:
        transport = make_transport(config)
        if isinstance(transport, SmtpTransport):
            transport.client()
    except Exception as exc:  # every send would fail the same way
        _errors(report, config, "setting up the SMTP transport")(exc)
        return
    smtp = config.smtp
    report.add("note", f"mail goes to the outbox {config.state / 'outbox'}" if smtp is None
               else f"mail goes to {smtp.host}:{smtp.port} ({smtp.security})")


def probe_smtp(config: Config) -> Report:
    """Open a real connection to smtp.host (EHLO, STARTTLS, AUTH) as a send would; send
    nothing. Every failure is an error: the mail could not go out."""
    from ..delivery.send import make_transport
    from ..delivery.smtp import SmtpTransport

    report = Report()
    if config.smtp is None:
        report.add("error", Problem(config.path, None, "--smtp: there is no 'smtp:' section "
                                    "to test (mail goes to the Maildir outbox)",
                                    "add one, or leave out --smtp"))
        return report
    try:
        transport = make_transport(config)
        assert isinstance(transport, SmtpTransport)
        report.add("note", asyncio.run(transport.probe()))
    except Exception as exc:  # each is one clear line, not a traceback
        _errors(report, config, "connecting to the SMTP server")(exc)
    return report

