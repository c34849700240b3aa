"""What several test modules share, so that no test module imports another.

Sections follow the suites they came from: sites for `digest send` (test_send), for the daemon
(test_daemon), a realistic edition rendered as a message (test_message), and reading the web
front's effects back from the state database (test_web). Fixtures live in conftest.py;
plain functions and constants live here. tests/test_suite_layout.py keeps it that way.
"""

from __future__ import annotations

import mailbox
import re
import time
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from conftest import SITE_TZ, make_site, post
from smtp_server import SmtpServer

from digest.config import Site
from digest.edition.layout import (
    DigestPost,
    DkimKey,
    Edition,
    LaidOutEdition,
    Layout,
    MailSettings,
    Recipient,
    default_list_id,
)
from digest.posts.sanitize import sanitize
from digest.state.sendlog import SendLog
from digest.state.store import Store
from digest.subscribers.tokens import Signer

# sites for `digest send` (test_send) ----------------------------------------------------------

MONDAY = datetime(2024, 6, 10, 9, 0, tzinfo=SITE_TZ)
WEEK = timedelta(days=7)
SECRET = "test-secret-0123456789abcdef"

POSTS = {
    "2024-06-04-union-organizer-data.md": post("Union Data Organizer", tags="[union, data]"),
    "2024-06-05-campaign-analyst.md": post("Campaign Analyst", tags="[campaigns, analytics]"),
    "2024-06-06-dba.md": post("Membership DBA", tags="[union, datamanagement]"),
    "2024-06-07-intern.md": post("Analytics Intern", tags="[analytics, intern]"),
    # before the first window: never in any digest
    "2024-05-01-old-job.md": post("Old Job", tags="[union]"),
}

SUBSCRIBERS: list[dict[str, Any]] = [
    {"email": "ana@example.org", "name": "Ana Gómez", "tags": ["union"]},
    {"email": "dev@example.org", "tags": ["analytics"], "exclude_tags": ["intern"]},
    {"email": "all@example.org", "name": "Sam"},
    {"email": "nobody@example.org", "tags": ["research"]},
]


def digest_site(tmp_path: Path, posts: dict[str, str] | None = None,
                subscribers: list[dict[str, Any]] | None = None, **digest: Any) -> Path:
    (tmp_path / "subscribers.yaml").write_text(
        yaml.safe_dump(SUBSCRIBERS if subscribers is None else subscribers,
                       allow_unicode=True), encoding="utf-8")
    settings = {"from": "Jobs Board <jobs@example.org>", "noun": "job", **digest}
    return make_site(tmp_path, dict(POSTS if posts is None else posts), extra={
        "subscribers": "subscribers.yaml", "digest": settings,
        "web": {"base_url": "https://jobs.example.org/digest"}})


def outbox(config_path: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(config_path.parent / "state" / "outbox", create=False)
    parser = BytesParser(policy=policy.default)
    messages = [parser.parsebytes(box.get_bytes(key)) for key in box.iterkeys()]
    return sorted(messages, key=lambda m: (str(m["Date"]), str(m["To"])))


def by_recipient(messages: list[EmailMessage]) -> dict[str, list[EmailMessage]]:
    out: dict[str, list[EmailMessage]] = {}
    for message in messages:
        out.setdefault(message["To"].addresses[0].addr_spec, []).append(message)
    return out


def titles(message: EmailMessage) -> list[str]:
    text = message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    return [t for t in ("Union Data Organizer", "Campaign Analyst", "Membership DBA",
                        "Analytics Intern", "Old Job", "Late Job", "Week Two Job",
                        "Renamed Job") if t in content]


# sites for the daemon (test_daemon): the same Monday, a real SMTP server -----------------

SECONDS = timedelta(seconds=1)

DAEMON_POSTS = {
    "2024-06-04-union-organizer-data.md": post("Union Data Organizer", tags="[union, data]"),
    "2024-06-05-campaign-analyst.md": post("Campaign Analyst", tags="[campaigns, analytics]"),
    "2024-06-06-dba.md": post("Membership DBA", tags="[union, datamanagement]"),
    "2024-06-07-intern.md": post("Analytics Intern", tags="[analytics, intern]"),
}
DAEMON_SUBSCRIBERS: list[dict[str, Any]] = [
    {"email": "ana@example.org", "tags": ["union"]},
    {"email": "dev@example.org", "tags": ["analytics"], "exclude_tags": ["intern"]},
    {"email": "all@example.org"},
    {"email": "nobody@example.org", "tags": ["research"]},  # nothing new for them
]
SERVED = ["all@example.org", "ana@example.org", "dev@example.org"]


def daemon_site(tmp_path: Path, smtp: SmtpServer, *, subscribers: list[dict[str, Any]]
                | None = None, smtp_settings: dict[str, Any] | None = None,
                **digest: Any) -> Path:
    write_subscribers(tmp_path, DAEMON_SUBSCRIBERS if subscribers is None else subscribers)
    return make_site(tmp_path, dict(DAEMON_POSTS), extra={
        "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job", **digest},
        "web": {"base_url": "https://jobs.example.org/digest", "listen": "127.0.0.1:0"},
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none", "timeout": 5,
                 "backoff": 0.05, **(smtp_settings or {})}})


def write_subscribers(tmp_path: Path, subscribers: list[dict[str, Any]]) -> None:
    (tmp_path / "subscribers.yaml").write_text(yaml.safe_dump(subscribers), encoding="utf-8")


def feed(tmp_path: Path, rel: str = "feed.xml") -> str:
    path = tmp_path / "public" / rel
    return path.read_text(encoding="utf-8") if path.exists() else ""


def wait_until(check: Any, timeout: float, step: float = 0.02) -> float:
    """Seconds it took for check() to be true; fails after *timeout*."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


# a realistic edition as a message (test_message) ----------------------------------------

TZ = ZoneInfo("America/New_York")
SITE = Site(url="https://jobs.example.org", title="Example Jobs Board",
            timezone="America/New_York", lang="en-US")
SENT = datetime(2024, 6, 10, 9, 0, 5, tzinfo=TZ)
MESSAGE_ID = "<d2024w24.3f9a1b2c@example.org>"
ZOE = Recipient("zoe@example.net", "Zoë Ñúñez",
                "https://jobs.example.org/digest/unsubscribe?t=Qm9vbXNfYmxhaF9ibGFo",
                "https://jobs.example.org/digest/preferences?t=UHJlZnNfYmxhaF9ibGFo")
SAM = Recipient("sam.okafor@example.com", "Sam Okafor")

JOBS = [  # title, tags, first paragraph (Markdown-ish HTML as the site renders it)
    ("Director of Data & Analytics, Teachers' Union", ("union", "analytics", "executive"),
     "The Teachers' Union is hiring a <strong>Director of Data &amp; Analytics</strong> to lead "
     "a team of four. You will own the member database, build dashboards for organizers and "
     "report to the Executive Director."),
    ("Organizing Data Manager", ("union", "data-management"),
     "Keep our membership records accurate and help organizers find the workers they need to "
     "talk to. Experience with a CRM such as Action Network or EveryAction is a plus."),
    ("Campaign Analyst, Housing for All", ("campaigns", "analytics"),
     "Model turnout and persuasion targets for a statewide ballot measure on tenant protections. "
     "You will work closely with the field and digital teams through November."),
    ("Voter File Engineer", ("engineering", "campaigns"),
     "Build and maintain the pipelines that load state voter files into our warehouse. We use "
     "Python, dbt and PostgreSQL; see <a href=\"https://jobs.example.org/stack/\">our stack</a>."),
    ("Senior Data Scientist, Public Health Coalition", ("analytics", "research"),
     "Design and analyse surveys of community health workers, and turn the results into briefs "
     "that partner organisations can use in their advocacy."),
    ("Membership Database Administrator", ("union", "data-management"),
     "Administer the membership system for a union of 40,000 nurses: imports from employers, "
     "dues reconciliation and access for local officers."),
    ("Analista de datos, Campaña por la vivienda", ("analytics", "données", "campaigns"),
     "Buscamos una persona bilingüe para analizar datos de encuestas y de contacto con "
     "votantes en comunidades de habla hispana."),
    ("IT Support Lead", ("it", "operations"),
     "Look after laptops, accounts and the office network for a staff of sixty, and help "
     "choose the tools we adopt next year."),
    ("Research Fellow, Labor Policy Institute", ("research", "union"),
     "A one-year fellowship studying collective bargaining outcomes in the public sector, "
     "with a stipend and mentoring from senior researchers."),
    ("Digital Organizer", ("campaigns", "digital"),
     "Plan and send our email and text programmes, grow our supporter list and report on what "
     "works. Spanish is a plus."),
]


def realistic_posts() -> tuple[DigestPost, ...]:
    posts = []
    for i, (title, tags, para) in enumerate(JOBS):
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        date = datetime(2024, 6, 9, 11, tzinfo=TZ) - timedelta(hours=15 * i)
        plain = re.sub(r"<[^>]+>", "", para).replace("&amp;", "&")
        posts.append(DigestPost(title, f"https://jobs.example.org/{date:%Y/%m/%d}/{slug}/", date,
                                tags, (), plain, sanitize(f"<p>{para}</p>")))
    return tuple(posts)


def edition(posts: tuple[DigestPost, ...] | None = None,
            followed: tuple[str, ...] | None = ("union", "analytics"),
            archive_url: str | None = "https://jobs.example.org/digest/2024-06-10/") -> Edition:
    chosen = posts or realistic_posts()
    if followed is not None and posts is None:
        chosen = tuple(p for p in chosen if set(followed) & set(p.tags))
    return Edition(datetime(2024, 6, 3, 9, tzinfo=TZ), datetime(2024, 6, 10, 9, tzinfo=TZ),
                   chosen, followed, archive_url)


def renderer(dkim_key: DkimKey | None = None, sender: str = "Example Jobs Board <jobs@example.org>"
             ) -> Layout:
    return Layout(MailSettings(SITE, sender, default_list_id(sender, SITE),
                                 "unsubscribe@example.org", None, ("job", "jobs"), dkim_key))


def build(recipient: Recipient = ZOE, ed: Edition | None = None,
          r: Layout | None = None) -> tuple[bytes, Layout, LaidOutEdition]:
    r = r or renderer()
    rendered = r.edition(ed or edition())
    return r.message(rendered, recipient, message_id=MESSAGE_ID, date=SENT), r, rendered


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


# the web front's effects, read back from the state database (test_web) -----------------

def token(email: str, purpose: str, secret: str = SECRET) -> str:
    return Signer([secret.encode()]).token(email, purpose)


def suppressed(site: Path) -> set[str]:
    store = Store.open(site.parent / "state")
    try:
        return SendLog(store).suppressed()
    finally:
        store.close()


def preferences(site: Path) -> dict[str, Any]:
    store = Store.open(site.parent / "state")
    try:
        return dict(SendLog(store).preferences())
    finally:
        store.close()
