"""The web front over real HTTP: uvicorn on a loopback port, the real state database, the
real outbox; each request checked by what it answers and by what it changed (or did not)."""

from __future__ import annotations

import email.utils
import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import build_site, post, write_posts
from helpers import (
    MONDAY,
    SECRET,
    SUBSCRIBERS,
    by_recipient,
    digest_site,
    outbox,
    preferences,
    suppressed,
    titles,
    token,
)
from web_server import WebServer

from digest.config import load_config
from digest.delivery import archive
from digest.delivery.send import send
from digest.edition.selection import period_slug
from digest.state.open import open_state

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    cfg = digest_site(tmp_path)
    build_site(cfg, now=MONDAY)
    return cfg


@pytest.fixture
def server(site: Path) -> Iterator[WebServer]:
    with WebServer(load_config(site)) as running:
        yield running


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


# one-click unsubscribe (RFC 8058) ------------------------------------------------------------
def test_one_click_post_unsubscribes_at_once_without_cookies(site: Path,
                                                             client: httpx.Client) -> None:
    answer = client.post(f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}",
                         data=ONE_CLICK)
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    assert "You are unsubscribed" in answer.text
    assert suppressed(site) == {"ana@example.org"}


def test_one_click_post_as_multipart_form_data_works_too(site: Path,
                                                         client: httpx.Client) -> None:
    answer = client.post(f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}",
                         files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert suppressed(site) == {"ana@example.org"}


def test_replayed_post_is_idempotent(site: Path, client: httpx.Client) -> None:
    url = f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}"
    assert [client.post(url, data=ONE_CLICK).status_code for _ in range(3)] == [200] * 3
    assert suppressed(site) == {"ana@example.org"}


@pytest.mark.parametrize("body", [{}, {"List-Unsubscribe": "one-click"},
                                  {"List-Unsubscribe": ["One-Click", "One-Click"]},
                                  {"unsubscribe": "yes"}])
def test_post_without_the_one_click_body_changes_nothing(site: Path, client: httpx.Client,
                                                         body: dict[str, Any]) -> None:
    answer = client.post(f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}", data=body)
    assert answer.status_code == 400
    assert "press the button" in answer.text
    assert suppressed(site) == set()


def test_get_asks_to_confirm_and_never_unsubscribes(site: Path, client: httpx.Client) -> None:
    url = f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}"
    page = client.get(url)
    assert page.status_code == 200
    assert re.search(r'<form method="post">\s*<input type="hidden" name="List-Unsubscribe" '
                     r'value="One-Click">\s*<button type="submit">Unsubscribe</button>', page.text)
    assert client.head(url).status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in page.headers["content-security-policy"]
    assert "<script" not in page.text
    assert suppressed(site) == set()


def test_confirm_page_of_someone_unsubscribed_says_so(site: Path, client: httpx.Client) -> None:
    url = f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}"
    client.post(url, data=ONE_CLICK)
    page = client.get(url)
    assert "You are unsubscribed" in page.text and "<button" not in page.text


def _bad_tokens(purpose: str) -> dict[str, str]:
    good = token("ana@example.org", purpose)
    other = "preferences" if purpose == "unsubscribe" else "unsubscribe"
    return {
        "forged": "A" * 22,
        "truncated": good[:-1],
        "one character changed": good[:-1] + ("A" if good[-1] != "A" else "B"),
        "malformed": good[:10] + "!" + good[11:],
        "oversized": good * 40,
        "other purpose": token("ana@example.org", other),
        "other secret": token("ana@example.org", purpose, "another-secret-0123456789"),
        "not subscribed": token("stranger@example.org", purpose),
        "an address": "ana@example.org",
    }


@pytest.mark.parametrize("kind", list(_bad_tokens("unsubscribe")))
def test_bad_tokens_get_404_and_change_nothing(site: Path, client: httpx.Client,
                                               kind: str) -> None:
    bad, bad_too = _bad_tokens("unsubscribe")[kind], _bad_tokens("preferences")[kind]
    pages = [client.get(f"/unsubscribe/{bad}"),
             client.post(f"/unsubscribe/{bad}", data=ONE_CLICK),
             client.get(f"/preferences/{bad_too}"),
             client.post(f"/preferences/{bad_too}", data={"action": "save", "mode": "all"})]
    assert [p.status_code for p in pages] == [404] * 4
    not_found = client.get("/no/such/page")
    # the same page as an unknown path: nothing tells a bad token from a missing page
    assert {p.text for p in pages} == {not_found.text}
    assert suppressed(site) == set() and preferences(site) == {}


def test_old_secret_works_while_kept_and_not_after(site: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    old = token("ana@example.org", "unsubscribe")
    monkeypatch.setenv("DIGEST_SECRET", f"a-brand-new-secret-0123456789 {SECRET}")
    with WebServer(load_config(site)) as running:
        assert httpx.get(f"{running.url}/unsubscribe/{old}").status_code == 200
    monkeypatch.setenv("DIGEST_SECRET", "a-brand-new-secret-0123456789")
    with WebServer(load_config(site)) as running:
        assert httpx.post(f"{running.url}/unsubscribe/{old}", data=ONE_CLICK).status_code == 404
    assert suppressed(site) == set()


def test_oversized_body_is_refused_and_changes_nothing(site: Path,
                                                       client: httpx.Client) -> None:
    url = f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}"
    big = "List-Unsubscribe=One-Click&x=" + "y" * 100_000
    assert client.post(url, content=big, headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b"List-Unsubscribe=One-Click&x="
        for _ in range(100):
            yield b"y" * 1000

    assert client.post(url, content=chunks(), headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 413
    assert suppressed(site) == set()


def test_head_options_and_unknown_paths(site: Path, client: httpx.Client) -> None:
    url = f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}"
    options = client.options(url)
    assert options.status_code == 405
    assert set(options.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert client.put(url, data=ONE_CLICK).status_code == 405
    assert client.delete(url).status_code == 405
    assert client.head("/healthz").status_code == 200
    missing = client.get("/unsubscribe/")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert client.get("/preferences").status_code == 404
    assert client.get("/state/state.sqlite3").status_code == 404
    assert client.get("/../state/state.sqlite3").status_code == 404
    assert suppressed(site) == set()


def test_concurrent_unsubscribes_of_one_address(site: Path, server: WebServer) -> None:
    url = f"{server.url}/unsubscribe/{token('ana@example.org', 'unsubscribe')}"
    codes: list[int] = []
    start = threading.Barrier(16)

    def click() -> None:
        start.wait()
        codes.append(httpx.post(url, data=ONE_CLICK, timeout=30).status_code)

    threads = [threading.Thread(target=click) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 16
    assert suppressed(site) == {"ana@example.org"}


def test_unsubscribed_address_gets_no_next_digest(site: Path, client: httpx.Client) -> None:
    client.post(f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}", data=ONE_CLICK)
    send(load_config(site), as_of=MONDAY)
    assert set(by_recipient(outbox(site))) == {"dev@example.org", "all@example.org"}


def test_unsubscribe_over_http_while_a_send_is_running(site: Path, server: WebServer) -> None:
    """That address gets nothing more in the run if its message has not gone yet."""
    from digest.delivery.outbox import MaildirTransport
    from digest.delivery.transport import Record

    url = f"{server.url}/unsubscribe/{token('all@example.org', 'unsubscribe')}"

    class ClickMidway(MaildirTransport):
        async def deliver(self, messages: Any, record: Record, *, stop: Any = None,
                          current: Any = None) -> None:
            async def first_then_click() -> Any:
                async for outgoing in messages:
                    yield outgoing
                    if outgoing.key == "ana@example.org":  # file order: ana first
                        async with httpx.AsyncClient() as http:
                            assert (await http.post(url, data=ONE_CLICK)).status_code == 200

            await super().deliver(first_then_click(), record, stop=stop, current=current)

    report = send(load_config(site), as_of=MONDAY,
                  transport=ClickMidway(site.parent / "state" / "outbox"))
    assert set(by_recipient(outbox(site))) == {"ana@example.org", "dev@example.org"}
    assert report.runs[0].counts == {"sent": 2, "suppressed": 1, "empty": 1}


def test_links_in_a_sent_digest_answer(tmp_path: Path) -> None:
    """The URLs the email carries (List-Unsubscribe and the footer) reach these pages."""
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    message = by_recipient(outbox(cfg))["ana@example.org"][0]
    header = str(message["List-Unsubscribe"])
    link = re.search(r"<https://jobs\.example\.org/digest(/unsubscribe/[^>]+)>", header)
    html_part = message.get_body(("html",))
    assert link is not None and html_part is not None
    manage = re.search(r'href="https://jobs\.example\.org/digest(/preferences/[^"]+)"',
                       html_part.get_content())
    archive = re.search(r'href="https://jobs\.example\.org/digest(/archive/[^"]+)"',
                        html_part.get_content())
    assert manage is not None and archive is not None
    with WebServer(load_config(cfg)) as running, httpx.Client(base_url=running.url) as http:
        assert http.get(manage[1]).status_code == 200
        assert http.get(archive[1]).status_code == 200
        assert http.post(link[1], data=ONE_CLICK).status_code == 200
    assert suppressed(cfg) == {"ana@example.org"}


# preferences ---------------------------------------------------------------------------------
def _boxes(page: str) -> dict[str, tuple[int, bool]]:
    """tag → (post count, ticked) as the page shows them."""
    found = re.findall(r'<input type="checkbox" name="tag" value="([^"]*)"( checked)?> '
                       r'<span>[^<]*</span> <span class="count">(\d+)</span>', page)
    return {tag: (int(count), bool(ticked)) for tag, ticked, count in found}


def test_preferences_page_lists_every_tag_with_its_count(client: httpx.Client) -> None:
    page = client.get(f"/preferences/{token('ana@example.org', 'preferences')}")
    assert page.status_code == 200
    assert _boxes(page.text) == {
        "analytics": (2, False), "campaigns": (1, False), "data": (1, False),
        "datamanagement": (1, False), "intern": (1, False), "union": (3, True)}
    assert "a•••@example.org" in page.text and "ana@example.org" not in page.text
    assert "Ana" not in page.text


def test_saved_tags_are_honoured_by_the_next_digest(site: Path, client: httpx.Client) -> None:
    url = f"/preferences/{token('ana@example.org', 'preferences')}"
    saved = client.post(url, data={"action": "save", "mode": "some",
                                   "tag": ["analytics", "campaigns"]})
    assert saved.status_code == 200 and "Saved" in saved.text
    assert _boxes(saved.text)["analytics"] == (2, True)
    assert _boxes(saved.text)["union"] == (3, False)
    assert preferences(site) == {"ana@example.org": ("analytics", "campaigns")}
    assert _boxes(client.get(url).text)["campaigns"] == (1, True)  # shown again on return
    send(load_config(site), as_of=MONDAY)
    ana = by_recipient(outbox(site))["ana@example.org"]
    assert titles(ana[0]) == ["Campaign Analyst", "Analytics Intern"]


def test_every_post_can_be_chosen(site: Path, client: httpx.Client) -> None:
    url = f"/preferences/{token('ana@example.org', 'preferences')}"
    assert client.post(url, data={"action": "save", "mode": "all"}).status_code == 200
    assert preferences(site) == {"ana@example.org": None}
    send(load_config(site), as_of=MONDAY)
    assert len(titles(by_recipient(outbox(site))["ana@example.org"][0])) == 4


@pytest.mark.parametrize("form, problem", [
    ({"action": "save", "mode": "some"}, "Choose at least one tag"),
    ({"action": "save", "mode": "some", "tag": ["union", "nosuchtag"]}, "do not exist"),
])
def test_bad_choices_are_refused_with_the_form_again(site: Path, client: httpx.Client,
                                                     form: dict[str, Any], problem: str) -> None:
    answer = client.post(f"/preferences/{token('ana@example.org', 'preferences')}", data=form)
    assert answer.status_code == 400 and problem in answer.text
    assert "<form" in answer.text
    assert preferences(site) == {}


def test_malformed_preferences_posts_are_400(site: Path, client: httpx.Client) -> None:
    url = f"/preferences/{token('ana@example.org', 'preferences')}"
    assert client.post(url, data={"action": "save", "mode": "most"}).status_code == 400
    assert client.post(url, data={"action": "delete-everyone"}).status_code == 400
    assert preferences(site) == {}


def test_unsubscribed_subscriber_can_resubscribe_from_the_tags_page(
        site: Path, client: httpx.Client) -> None:
    client.post(f"/unsubscribe/{token('ana@example.org', 'unsubscribe')}", data=ONE_CLICK)
    url = f"/preferences/{token('ana@example.org', 'preferences')}"
    assert "You are unsubscribed" in client.get(url).text
    answer = client.post(url, data={"action": "resubscribe"})
    assert answer.status_code == 200 and "subscribed again" in answer.text
    assert suppressed(site) == set()


def test_tags_of_a_new_post_appear_on_the_page(site: Path, server: WebServer) -> None:
    server.web.catalogue._keep = 0  # counts are normally kept for a minute
    write_posts(site.parent, {"2024-06-08-researcher.md": post("Researcher", tags="[research]")})
    page = httpx.get(f"{server.url}/preferences/{token('ana@example.org', 'preferences')}")
    assert _boxes(page.text)["research"] == (1, False)


def test_subscriber_removed_from_the_file_gets_404(site: Path, server: WebServer) -> None:
    digest_site(site.parent, subscribers=SUBSCRIBERS[1:])  # ana removed
    answer = httpx.get(f"{server.url}/preferences/{token('ana@example.org', 'preferences')}")
    assert answer.status_code == 404


# archive -------------------------------------------------------------------------------------
def test_archive_shows_past_digests_without_personal_data(site: Path) -> None:
    send(load_config(site), as_of=MONDAY)
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        index = http.get("/archive/")
        assert index.status_code == 200
        (slug,) = re.findall(r'<a href="([0-9-]+)">', index.text)
        page = http.get(f"/archive/{slug}")
        assert http.get("/archive", follow_redirects=True).status_code == 200
    assert page.status_code == 200
    for title in ("Union Data Organizer", "Campaign Analyst", "Membership DBA",
                  "Analytics Intern"):
        assert title in page.text
    assert "Old Job" not in page.text
    for personal in ("@example.org", "Ana Gómez", "Sam", "unsubscribe/", "preferences/"):
        assert personal not in page.text and personal not in index.text
    assert page.headers["etag"] and "no-store" not in page.headers["cache-control"]


def test_archive_answers_304_to_a_matching_etag(site: Path) -> None:
    send(load_config(site), as_of=MONDAY)
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        slug = re.findall(r'<a href="([0-9-]+)">', http.get("/archive/").text)[0]
        first = http.get(f"/archive/{slug}")
        again = http.get(f"/archive/{slug}", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        other = http.get(f"/archive/{slug}", headers={"If-None-Match": '"nope"'})
        assert other.status_code == 200


@pytest.mark.parametrize("path", ["/archive/2099-01-01", "/archive/..%2Fstate.sqlite3",
                                  "/archive/%2e%2e", "/archive/2024-06-10.json"])
def test_unknown_archive_pages_are_404(site: Path, client: httpx.Client, path: str) -> None:
    send(load_config(site), as_of=MONDAY)
    assert client.get(path).status_code == 404


def test_archive_keeps_what_was_sent_after_a_post_is_edited(site: Path) -> None:
    send(load_config(site), as_of=MONDAY)
    write_posts(site.parent, {"2024-06-06-dba.md": post("Renamed DBA", tags="[union]")})
    with WebServer(load_config(site)) as running:
        slug = re.findall(r'<a href="([0-9-]+)">', httpx.get(f"{running.url}/archive/").text)[0]
        page = httpx.get(f"{running.url}/archive/{slug}").text
    assert "Membership DBA" in page and "Renamed DBA" not in page


def test_a_second_digest_ending_the_same_day_is_in_the_archive_too(site: Path) -> None:
    """Regression: a run whose day was taken gets a slug with the time (period_slug), and
    the archive refused that slug: its "view in browser" link was a 404."""
    send(load_config(site), as_of=MONDAY)
    config = load_config(site)
    (day,) = (p.stem for p in archive.folder(config.state).glob("*.json"))
    end = datetime.fromisoformat(f"{day}T18:30:00").replace(tzinfo=config.site.tz)
    slug = period_slug(end, {day})
    shared = open_state(config)
    try:
        archive.keep(config.state, shared, slug, end - timedelta(hours=9), end, [])
    finally:
        shared.close()
    with WebServer(config) as running, httpx.Client(base_url=running.url) as http:
        assert re.findall(r'<a href="([^"]+)">', http.get("/archive/").text)[:2] == [slug, day]
        assert http.get(f"/archive/{slug}").status_code == 200


def test_a_digest_archived_before_the_shared_state_kept_the_archive_is_shown(
        site: Path) -> None:
    """Before 0.8 only the file state/archive/SLUG.json held a sent digest; `digest serve`
    copies such files into the shared state when it starts, and shows them as before."""
    send(load_config(site), as_of=MONDAY)
    config = load_config(site)
    (day,) = (p.stem for p in archive.folder(config.state).glob("*.json"))
    with WebServer(config) as running, httpx.Client(base_url=running.url) as http:
        index, page = http.get("/archive/").text, http.get(f"/archive/{day}").text
    with sqlite3.connect(config.state / "state.sqlite3") as db:
        db.execute("DELETE FROM archive")  # as a database from before 0.8 has it
    db.close()
    with WebServer(config) as running, httpx.Client(base_url=running.url) as http:
        assert http.get("/archive/").text == index
        assert http.get(f"/archive/{day}").text == page
    shared = open_state(config)
    try:
        assert archive.adopt(config.state, shared) == 0  # copied when serve started, once
    finally:
        shared.close()


def test_empty_archive(client: httpx.Client) -> None:
    page = client.get("/archive/")
    assert page.status_code == 200 and "No digest has been sent yet" in page.text


# feeds and health ----------------------------------------------------------------------------
@pytest.mark.parametrize("path, kind", [
    ("/feed.xml", "application/atom+xml"), ("/feed.rss", "application/rss+xml"),
    ("/feed/by_tag/union.xml", "application/atom+xml"), ("/feeds.opml", "text/x-opml")])
def test_feeds_are_served_with_their_types_and_validators(client: httpx.Client, path: str,
                                                          kind: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == kind
    etag, modified = answer.headers["etag"], answer.headers["last-modified"]
    assert email.utils.parsedate_to_datetime(modified)
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == etag


def test_a_changed_feed_gets_a_new_etag_and_an_unchanged_one_keeps_it(
        site: Path, client: httpx.Client) -> None:
    before = {p: client.get(p).headers["etag"] for p in ("/feed.xml", "/feed/by_tag/data.xml")}
    write_posts(site.parent, {"2024-06-09-new.md": post("New Union Job", tags="[union]")})
    build_site(site, now=MONDAY)
    after = {p: client.get(p) for p in before}
    assert after["/feed.xml"].headers["etag"] != before["/feed.xml"]
    assert "New Union Job" in after["/feed.xml"].text
    assert client.get("/feed.xml", headers={"If-None-Match": before["/feed.xml"]}
                      ).status_code == 200
    assert after["/feed/by_tag/data.xml"].headers["etag"] == before["/feed/by_tag/data.xml"]


def test_healthz(client: httpx.Client) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert answer.headers["cache-control"] == "no-store"


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def _leaks(text: str, own: str | None = None) -> list[str]:
    """The subscribers' addresses *text* shows, in any spelling a page could use; the masked
    form of *own* (the subscriber whose token the page was asked with) is allowed."""
    found = []
    for address in (s["email"] for s in SUBSCRIBERS):
        spellings = {address, quote(address), address.replace("@", "&#64;"),
                     address.replace("@", "&#x40;")}
        if own is None or _mask(address) != _mask(own):
            spellings.add(_mask(address))
        found += [f"{address} as {s!r}" for s in spellings if s in text]
    return found


def test_no_page_lists_subscribers(site: Path, client: httpx.Client) -> None:
    send(load_config(site), as_of=MONDAY)
    slugs = re.findall(r'<a href="([0-9-]+)">', client.get("/archive/").text)
    assert slugs  # the archive page of the digest just sent is asked for too
    pages = ["/", "/archive/", *(f"/archive/{slug}" for slug in slugs), "/feed.xml",
             "/feed.rss", "/feed/by_tag/union.xml", "/feeds.opml", "/unsubscribe",
             "/preferences/", "/subscribers", "/subscribers.yaml", "/state/", "/healthz"]
    for path in pages:
        assert _leaks(client.get(path).text) == [], path
    for address in (s["email"] for s in SUBSCRIBERS):
        unsubscribe = f"/unsubscribe/{token(address, 'unsubscribe')}"
        prefs = f"/preferences/{token(address, 'preferences')}"
        shown = client.get(prefs)
        # the page is the subscriber's own (their address, masked), so a leak would show here
        assert shown.status_code == 200 and _mask(address) in shown.text, address
        answers = [client.get(unsubscribe), shown,
                   client.post(prefs, data={"action": "save", "mode": "all"}),
                   client.post(unsubscribe, data=ONE_CLICK), client.get(unsubscribe),
                   client.get(prefs)]
        for answer in answers:
            assert answer.status_code == 200, (answer.request.method, answer.request.url)
            assert _leaks(answer.text, own=address) == [], (answer.request.method,
                                                             answer.request.url)


# the command ---------------------------------------------------------------------------------
def test_digest_serve_runs_until_sigterm(site: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(site), "serve", "--listen",
         "127.0.0.1:0"], stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, DIGEST_SECRET=SECRET))
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            found = re.search(r"web front listening on (http://\S+)", line)
            if found:
                url = found[1]
                break
        assert url is not None
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/feed.xml").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
    assert code == 0


@pytest.mark.parametrize("web, expected", [
    ({"listen": "localhost"}, "'web.listen' must be HOST:PORT"),
    ({"listen": "127.0.0.1:http"}, "'web.listen' must be HOST:PORT"),
    ({"lisen": "127.0.0.1:8080"}, "did you mean 'listen'"),
])
def test_bad_web_settings_are_config_errors(tmp_path: Path, web: dict[str, Any],
                                            expected: str) -> None:
    from conftest import make_site, run_cli

    cfg = make_site(tmp_path, {}, extra={"web": web})
    code, _out, err = run_cli(["--config", str(cfg), "serve"])
    assert code == 2 and expected in err and "config.yaml" in err


def test_serve_without_web_section_or_secret_is_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import make_site, run_cli

    cfg = make_site(tmp_path, {})
    code, _out, err = run_cli(["--config", str(cfg), "serve"])
    assert code == 2 and "no 'web:' section" in err
    cfg = make_site(tmp_path, {}, extra={"web": {"secret_env": "NO_SUCH_SECRET_VAR"}})
    code, _out, err = run_cli(["--config", str(cfg), "serve"])
    assert code == 2 and "NO_SUCH_SECRET_VAR must hold a secret" in err


def test_serve_on_a_taken_address_says_so(site: Path) -> None:
    import socket

    from conftest import run_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _out, err = run_cli(["--config", str(site), "serve", "--listen",
                                   f"127.0.0.1:{port}"])
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err


def test_listening_socket_is_tcp_so_small_answers_are_not_delayed() -> None:
    """asyncio sets TCP_NODELAY on accepted connections only for IPPROTO_TCP sockets;
    without it every small page waited ~40 ms for Nagle and the client's delayed ACK."""
    import socket

    from digest.web.server import bind

    sock = bind("127.0.0.1:0")
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
