"""Bounces without a DSN part: the plain-text notices of qmail, Exim, old sendmail and Yahoo,
read for the recipients they name and the SMTP reply each got.

Only the notice is read, up to the line where the copy of the returned message begins, so
the addresses and codes in our own digest (quoted below it) are never taken for the
bounce's. A notice that says it is a warning (delayed, will retry) is no bounce at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .events import ENHANCED
from .report import one_line

# where the quoted original starts: qmail, Yahoo, Exim, sendmail, and bare header lines
COPY = re.compile(
    r"^(?:-{2,}.*(?:copy of the message|original message|returned message|undelivered "
    r"message|message header|below this line).*|(?:return-path|received|message-id|"
    r"dkim-signature):.*)$", re.IGNORECASE | re.MULTILINE)
WARNING = re.compile(
    r"\b(?:has been delayed|have been delayed|is delayed|delivery (?:is )?delayed|"
    r"not yet been delivered|will (?:continue|keep) (?:trying|to try)|will (?:be )?retr(?:y|ied)|"
    r"still trying|this is a warning|warning message only|no action is required)\b",
    re.IGNORECASE)
BOUNCE_SUBJECT = re.compile(
    r"\b(?:undeliver|undelivered|delivery (?:status notification|failure|has failed)|"
    r"failure notice|mail delivery failed|returned mail|delivery failure|"
    r"could not be delivered|non[- ]?delivery|rejected)", re.IGNORECASE)
DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
BASIC = re.compile(r"(?:^|[\s:(\[])([45])\d\d(?=[\s:-])")  # "550 ", "554: " (Yahoo)
# a line naming a failed recipient: `<a@b>:` (qmail, Yahoo), an address alone on its line
# (Exim), `<a@b>... reason` (sendmail)
RECIPIENT = re.compile(r"^\s*<?([^\s<>@\"(),;:]{1,200}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,63})>?"
                       r"(?::|\.\.\.)?(?:\s.*)?$")
PERMANENT = re.compile(r"permanent (?:fatal )?error|permanently|fatal error", re.IGNORECASE)
GAVE_UP = re.compile(r"retry timeout exceeded|queue lifetime|too long in (?:the )?queue|"
                     r"expired|could not be delivered within|giving up", re.IGNORECASE)


@dataclass(frozen=True)
class Failed:
    """One recipient a plain-text bounce names, and what it says about it."""

    address: str
    permanent: bool
    status: str | None
    diagnostic: str


def notice(text: str) -> str:
    """The notice part of a bounce's text: what comes before the quoted original."""
    found = COPY.search(text)
    return text[:found.start()] if found else text


def is_warning(subject: str, text: str) -> bool:
    return bool(WARNING.search(subject) or WARNING.search(notice(text)[:8000]))


def looks_like_bounce(sender: str, subject: str) -> bool:
    """A notice from a mailer daemon, or with a bounce's subject."""
    return bool(DAEMON.match(sender) or BOUNCE_SUBJECT.search(subject))


def failures(text: str) -> list[Failed]:
    """The recipients the notice names, each with the code found after it (enhanced code
    first, else the basic reply code), and whether that failure is permanent."""
    lines = notice(text).splitlines()[:500]
    found: list[tuple[str, list[str]]] = []
    for line in lines:
        match = RECIPIENT.match(line)
        if match and "@" in match.group(1) and not _is_prose(line, match.group(1)):
            found.append((match.group(1), [line.strip()]))
        elif found:
            found[-1][1].append(line.strip())
    whole = notice(text)
    out: list[Failed] = []
    seen: set[str] = set()
    for address, said in found[:50]:
        key = address.lower()
        if key in seen:
            continue
        seen.add(key)
        diagnostic = one_line(" ".join(s for s in said if s), 500)
        out.append(_judge(address, diagnostic, whole))
    return out


def _is_prose(line: str, address: str) -> bool:
    """`Remote host said: ... <a@b>` is a reply quoting the address, not a recipient line."""
    before = line.split(address)[0]
    return bool(re.search(r"[A-Za-z]{3,}.*[A-Za-z]", before))


def _judge(address: str, diagnostic: str, whole: str) -> Failed:
    enhanced = ENHANCED.search(diagnostic)
    if enhanced:
        return Failed(address, enhanced.group(1) == "5", enhanced.group(0), diagnostic)
    basic = BASIC.search(diagnostic)
    if basic:
        return Failed(address, basic.group(1) == "5", None, diagnostic)
    # no code: the notice's own words decide; gave up after retrying is transient
    if GAVE_UP.search(diagnostic) or GAVE_UP.search(whole[:4000]):
        return Failed(address, False, None, diagnostic)
    return Failed(address, bool(PERMANENT.search(whole[:4000])), None, diagnostic)
