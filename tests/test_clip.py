"""A digest's HTML stays under `digest.clip_bytes` (Gmail clips past ~102 KB and hides the
footer): the posts that do not fit become "and N more", the footer always stays.

Messages are built by the real Layout (Jinja, css-inline, quoted-printable) and read back
with the stdlib email package, as a mail client would; sizes are of the decoded HTML with
CRLF line ends, which is what Gmail counts.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import post as post_file
from helpers import MONDAY, SECRET, digest_site, outbox

from digest.config import Site, load_config
from digest.delivery.send import send
from digest.delivery.session import mail_settings
from digest.edition.clip import most
from digest.edition.layout import (
    DigestPost,
    Edition,
    LaidOutEdition,
    Layout,
    MailSettings,
    Recipient,
    default_list_id,
)
from digest.errors import ConfigError

TZ = ZoneInfo("America/New_York")
SITE = Site(url="https://jobs.example.org", title="Jobs Board", timezone="America/New_York")
ARCHIVE = "https://jobs.example.org/digest/archive/2024-06-10"
UNSUBSCRIBE = "https://jobs.example.org/digest/unsubscribe/" + "u" * 22
PREFERENCES = "https://jobs.example.org/digest/preferences/" + "p" * 22
ZOE = Recipient("zoe@example.net", "Zoë Ñúñez", UNSUBSCRIBE, PREFERENCES)
WORDS = ("Organise members, build the data pipeline & report on the campaign's reach "
         "across every branch of the union; ")


def posts(count: int, paragraph_chars: int = 1800) -> tuple[DigestPost, ...]:
    """*count* posts newest first, each with a long excerpt (~2 KB of HTML once laid out)."""
    made = []
    for i in range(count):
        date = datetime(2024, 6, 10, 8, tzinfo=TZ) - timedelta(hours=i + 1)
        text = (WORDS * (paragraph_chars // len(WORDS) + 1))[:paragraph_chars]
        made.append(DigestPost(f"Job number {i}", f"https://jobs.example.org/jobs/{i}/", date,
                               ("union", "data") if i % 2 else ("union",), (), text,
                               f"<p>{html.escape(text)}</p>"))
    return tuple(made)


def edition(items: tuple[DigestPost, ...], archive_url: str | None = ARCHIVE,
            followed: tuple[str, ...] | None = ("union", "data")) -> Edition:
    return Edition(datetime(2024, 6, 3, 9, tzinfo=TZ), datetime(2024, 6, 10, 9, tzinfo=TZ),
                   items, followed, archive_url)


class CountingLayout(Layout):
    """A real Layout that counts its HTML layouts (render + CSS inlining)."""

    layouts = 0

    def _page(self, context: dict[str, Any]) -> str:
        self.layouts += 1
        return super()._page(context)


def layout(clip_bytes: int = 100_000, site: Site = SITE) -> CountingLayout:
    return CountingLayout(MailSettings(site, "Jobs Board <jobs@example.org>",
                                       default_list_id("jobs@example.org", site),
                                       "unsubscribe@example.org", None, ("job", "jobs"),
                                       clip_bytes=clip_bytes))


def message(r: Layout, rendered: LaidOutEdition, recipient: Recipient = ZOE) -> EmailMessage:
    raw = r.message(rendered, recipient, message_id="<clip@example.org>",
                    date=datetime(2024, 6, 10, 9, tzinfo=TZ))
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(parsed: EmailMessage) -> tuple[str, str]:
    text, page = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert text is not None and page is not None
    # get_content keeps the part's CRLF line ends
    return (text.get_content().replace("\r\n", "\n"),
            page.get_content().replace("\r\n", "\n"))


def size(page: str) -> int:
    """Decoded bytes of the HTML part as sent: UTF-8 with CRLF line ends."""
    return len(page.encode("utf-8")) + page.count("\n")


def shown_html(page: str) -> list[str]:
    return re.findall(r'<h2 class="title"[^>]*><a href="[^"]*"[^>]*>([^<]*)</a>', page)


def shown_text(text: str) -> list[str]:
    return re.findall(r"^(Job number \d+.*)$", text, re.M)


def more(page: str) -> tuple[int, str | None]:
    """The "And N more" count and its link in the HTML part; (0, None) without one."""
    found = re.search(r'(?:<a href="([^"]*)"[^>]*>)?And (\d+) more jobs?( in your tags)?', page)
    return (int(found.group(2)), found.group(1)) if found else (0, None)


def footer_links(page: str) -> bool:
    return (f'href="{html.escape(PREFERENCES)}"' in page
            and f'href="{html.escape(UNSUBSCRIBE)}"' in page and "Unsubscribe</a>" in page)


def test_a_hundred_long_posts_fit_under_the_budget_with_the_footer_and_n_more() -> None:
    r = layout()
    rendered = r.edition(edition(posts(100)))
    _text, page = parts(message(r, rendered))
    # under, and not by much more than one post (~2.6 KB) and the personal values' reserve
    assert 100_000 - 6_000 < size(page) <= 100_000
    assert footer_links(page)
    titles = shown_html(page)
    count, link = more(page)
    assert titles == [f"Job number {i}" for i in range(len(titles))]  # newest kept
    assert 10 < len(titles) < 100 and count == 100 - len(titles) == 100 - rendered.shown
    assert link == ARCHIVE
    # bisection: the whole digest once, then about log2(100) layouts, not one per post
    assert r.layouts <= 1 + 7
    # another shape of recipient starts from that count: all posts, that count, one more
    _text, page = parts(message(r, rendered, Recipient("sam@example.net")))
    assert r.layouts <= 1 + 7 + 5 and size(page) <= 100_000
    assert len(shown_html(page)) - len(titles) in (0, 1, 2)


def test_most_finds_the_largest_count_that_fits_with_or_without_a_hint() -> None:
    for count in range(0, 70):
        for threshold in range(0, count + 1):
            for hint in (0, 1, threshold - 3, threshold - 1, threshold, threshold + 1,
                         threshold + 5, count):
                calls: list[int] = []

                def fits(k: int, threshold: int = threshold, calls: list[int] = calls
                         ) -> bool:
                    calls.append(k)
                    return k <= threshold

                assert most(count, fits, hint) == threshold, (count, threshold, hint)
                assert all(0 < k <= count for k in calls) and len(set(calls)) == len(calls)
                assert len(calls) <= max(count, 1).bit_length() + (
                    2 * abs(hint - threshold).bit_length() + 2 if hint else 0)


def test_the_text_part_carries_the_same_posts_and_the_same_n_more() -> None:
    r = layout()
    text, page = parts(message(r, r.edition(edition(posts(100)))))
    titles = shown_html(page)
    assert shown_text(text) == titles
    count = 100 - len(titles)
    assert f"And {count} more jobs in your tags: {ARCHIVE}\n" in text
    assert f"Here are the newest {len(titles)} of the 100 new jobs" in text
    assert f"Here are the newest {len(titles)} of the 100 new jobs" in page
    assert f"Unsubscribe: {UNSUBSCRIBE}" in text and f"Manage your tags: {PREFERENCES}" in text


def test_without_an_archive_the_n_more_links_to_the_site() -> None:
    r = layout()
    _text, page = parts(message(r, r.edition(edition(posts(100), archive_url=None))))
    assert more(page)[1] == "https://jobs.example.org/"
    r = layout(site=Site(title="No Web", timezone="UTC"))  # no site address either
    text, page = parts(message(r, r.edition(edition(posts(100), archive_url=None))))
    count, link = more(page)
    assert count > 0 and link is None
    assert f"And {count} more jobs in your tags.\n" in text


def test_a_digest_that_fits_is_laid_out_once_and_byte_for_byte_as_without_a_budget() -> None:
    for items in (posts(3), posts(30, 200), posts(1)):
        small, large = layout(), layout(clip_bytes=10_000_000)
        ed = edition(items)
        a, b = small.edition(ed), large.edition(ed)
        for recipient in (ZOE, Recipient("sam@example.net")):
            raw = small.message(a, recipient, message_id="<c@example.org>",
                                date=datetime(2024, 6, 10, 9, tzinfo=TZ))
            assert raw == large.message(b, recipient, message_id="<c@example.org>",
                                        date=datetime(2024, 6, 10, 9, tzinfo=TZ))
        assert a.shown == len(items) and small.layouts == 2  # one per shape, no more
        _text, page = parts(message(small, a))
        assert more(page) == (0, None) and "And " not in page


def test_at_the_smallest_budget_the_footer_still_fits() -> None:
    r = layout(clip_bytes=10_000)
    for recipient in (ZOE, Recipient("sam@example.net", None), Recipient(
            "a&'b@example.net", "\"&\" " * 25, UNSUBSCRIBE, PREFERENCES)):
        text, page = parts(message(r, r.edition(edition(posts(40))), recipient))
        assert size(page) <= 10_000
        assert "subscribed to the Jobs Board digest" in page
        assert "Unsubscribe" in page or "To unsubscribe, reply" in page
        assert shown_text(text) == shown_html(page)


def test_links_longer_than_the_reserve_get_a_layout_measured_for_them() -> None:
    r = layout(clip_bytes=20_000)
    rendered = r.edition(edition(posts(60)))
    long_link = "https://jobs.example.org/u?" + "&x='y'" * 140  # ~900 chars; far longer escaped
    wide = Recipient("w@example.net", "W", long_link, long_link.replace("/u?", "/p?"))
    _text, normal = parts(message(r, rendered))
    _text, page = parts(message(r, rendered, wide))
    assert size(page) <= 20_000 and html.escape(long_link) in page
    assert len(shown_html(page)) <= len(shown_html(normal))
    assert len(rendered.variants) == 2


def test_a_single_post_over_the_budget_alone_is_cut_short_and_the_footer_stays() -> None:
    huge = DigestPost("Enormous " * 30_000, "https://jobs.example.org/jobs/huge/",
                      datetime(2024, 6, 10, 8, 30, tzinfo=TZ),
                      tuple(f"tag{i}" for i in range(2000)), (), "word " * 60_000,
                      "<p>" + "word " * 60_000 + "</p>")
    r = layout()
    text, page = parts(message(r, r.edition(edition((huge, *posts(5)), followed=None))))
    assert size(page) <= 100_000 and footer_links(page)
    [title] = shown_html(page)
    assert title.startswith("Enormous Enormous") and title.endswith("…")
    assert len(title) < 250
    assert page.count('class="tag"') == 10
    assert 'href="https://jobs.example.org/jobs/huge/"' in page
    assert more(page) == (5, ARCHIVE)  # the newest post, cut short, then "and 5 more"
    assert f"And 5 more jobs: {ARCHIVE}" in text  # following every tag: not "in your tags"
    assert shown_text(text) == [] and title[:40] in text and "word word …" in text
    assert size(parts(message(r, r.edition(edition((huge,)))))[1]) <= 100_000


def test_clip_bytes_is_read_from_the_config_and_bounded_with_its_line(tmp_path: Path) -> None:
    assert mail_settings(load_config(digest_site(tmp_path))).clip_bytes == 100_000
    cfg = digest_site(tmp_path, clip_bytes=30_000)
    assert mail_settings(load_config(cfg)).clip_bytes == 30_000
    for bad in (9_999, 10_000_001, "lots", True):
        text = cfg.read_text(encoding="utf-8")
        cfg.write_text(re.sub(r"clip_bytes: .*", f"clip_bytes: {bad}", text), encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(cfg)
        [problem] = caught.value.problems
        line = cfg.read_text(encoding="utf-8").splitlines().index(f"  clip_bytes: {bad}") + 1
        assert (problem.path, problem.line) == (cfg, line)
        assert "'digest.clip_bytes'" in problem.message


def test_digest_send_keeps_each_subscriber_s_digest_under_the_configured_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    body = "Organise members and build the data pipeline. " * 5 + "\n"
    files = {f"2024-06-0{4 + i % 4}-job-{i}.md": post_file(f"Union Job {i}", body,
                                                           tags="[union, data]")
             for i in range(40)}
    cfg = digest_site(tmp_path, files, [{"email": "ana@example.org", "name": "Ana",
                                         "tags": ["union"]}], clip_bytes=12_000)
    send(load_config(cfg), as_of=MONDAY)
    [sent] = outbox(cfg)
    text, page = parts(sent)
    assert size(page) <= 12_000
    shown = re.findall(r">(Union Job \d+)</a>", page)
    count, link = more(page)
    assert 0 < len(shown) < 40 and count == 40 - len(shown)
    assert link is not None and link.startswith("https://jobs.example.org/digest/archive/")
    assert "/unsubscribe/" in page and "/preferences/" in page
    assert re.findall(r"^(Union Job \d+)$", text, re.M) == shown
