""""View this digest in your browser" opens the reader's own edition, not the whole run, and
`digest preview --subscriber` shows one person's digest filled in: a real send to the outbox,
the real web front on a loopback port, the real state database, the command line in-process."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from conftest import make_site, post, run_cli
from helpers import (
    MONDAY,
    POSTS,
    SECRET,
    SUBSCRIBERS,
    by_recipient,
    digest_site,
    outbox,
    titles,
    token,
)
from web_server import WebServer

from digest.config import load_config
from digest.delivery import archive
from digest.delivery.archive import ArchivedPost, ArchivedRun
from digest.delivery.send import send
from digest.web import archive_pages

BASE = "https://jobs.example.org/digest"
ALL_TITLES = ["Analytics Intern", "Membership DBA", "Campaign Analyst", "Union Data Organizer"]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def _links(message: EmailMessage) -> str:
    """The "view in browser" link, the same in both parts; the path under the web front."""
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    in_html = re.search(r'<a href="([^"]+)"[^>]*>View this digest in your browser</a>',
                        html_part.get_content())
    in_text = re.search(r"View this digest in your browser: (\S+)", text_part.get_content())
    assert in_html is not None and in_text is not None
    assert in_html[1] == in_text[1] and in_html[1].startswith(f"{BASE}/archive/")
    return in_html[1].removeprefix(BASE)


def _page_titles(page: str) -> list[str]:
    return re.findall(r'<h2><a href="[^"]+">([^<]+)</a></h2>', page)


def _strip_entry_ids(site: Path) -> None:
    """Make the run's archive what a version before edition pages wrote: no "id" per post."""
    state = site.parent / "state"
    (path,) = archive.folder(state).glob("*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    for item in data["posts"]:
        del item["id"]
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    with sqlite3.connect(state / "state.sqlite3") as db:
        db.execute("DELETE FROM archive")
    db.close()


# the link in each email -------------------------------------------------------------------
def test_each_emails_view_in_browser_link_shows_exactly_its_posts(tmp_path: Path) -> None:
    site = digest_site(tmp_path)
    send(load_config(site), as_of=MONDAY)
    mail = {who: messages[0] for who, messages in by_recipient(outbox(site)).items()}
    assert set(mail) == {"ana@example.org", "dev@example.org", "all@example.org"}
    links = {who: _links(message) for who, message in mail.items()}
    assert len(set(links.values())) == 3  # union, analytics without interns, everything
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        pages = {who: http.get(link) for who, link in links.items()}
        whole = http.get(links["ana@example.org"].rsplit("/", 1)[0])
    for who, page in pages.items():
        assert page.status_code == 200 and page.headers["etag"]
        shown = _page_titles(page.text)
        assert shown == [t for t in ALL_TITLES if t in titles(mail[who])]  # email's order
        assert "@example.org" not in page.text and "Ana Gómez" not in page.text
        assert "unsubscribe/" not in page.text and "preferences/" not in page.text
    assert _page_titles(pages["ana@example.org"].text) == ["Membership DBA",
                                                           "Union Data Organizer"]
    assert _page_titles(pages["dev@example.org"].text) == ["Campaign Analyst"]
    assert "1 new job," in pages["dev@example.org"].text
    assert _page_titles(whole.text) == ALL_TITLES  # the whole run's page is as it was


def test_subscribers_added_to_a_run_already_archived_get_their_own_edition(
        tmp_path: Path) -> None:
    """Their edition did not exist when the run was archived (the archive is never
    rewritten): its page is made from the archive and the id alone. The archive here is one
    written before edition pages (no entry ids): the posts are found by their URLs."""
    site = digest_site(tmp_path)
    send(load_config(site), as_of=MONDAY)
    _strip_entry_ids(site)
    digest_site(tmp_path, subscribers=[*SUBSCRIBERS,
                                       {"email": "new@example.org", "tags": ["data"]},
                                       {"email": "camp@example.org", "tags": ["campaigns"]}])
    report = send(load_config(site), as_of=MONDAY)
    assert report.runs[0].counts["sent"] == 5  # the three before and the two added
    mail = by_recipient(outbox(site))
    new, camp = _links(mail["new@example.org"][0]), _links(mail["camp@example.org"][0])
    assert new.count("/") == 3 and camp.count("/") == 3  # /archive/SLUG/EDITION
    # same posts, same page: dev's tags differ from camp's but carry the same post
    assert camp == _links(mail["dev@example.org"][0])
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        assert _page_titles(http.get(new).text) == ["Union Data Organizer"]
        assert _page_titles(http.get(camp).text) == ["Campaign Analyst"]


def test_links_point_into_the_archive_as_frozen_after_a_post_is_gone(tmp_path: Path) -> None:
    """The run's posts as the archive froze them, not as they are now: with the newest post
    deleted, a subscriber added later gets the link to their two posts where the archive
    holds them (second and fourth), not to whatever is now second and fourth."""
    site = digest_site(tmp_path)
    send(load_config(site), as_of=MONDAY)
    ana = _links(by_recipient(outbox(site))["ana@example.org"][0])
    digest_site(tmp_path, subscribers=[*SUBSCRIBERS, {"email": "u2@example.org",
                                                      "tags": ["union"]}])
    (tmp_path / "_posts" / "2024-06-07-intern.md").unlink()  # after: digest_site writes it
    assert send(load_config(site), as_of=MONDAY).runs[0].posts == 3
    late = _links(by_recipient(outbox(site))["u2@example.org"][0])
    assert late == ana
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        assert _page_titles(http.get(late).text) == ["Membership DBA", "Union Data Organizer"]


def test_a_run_archived_before_edition_pages_is_still_served(tmp_path: Path) -> None:
    site = digest_site(tmp_path)
    send(load_config(site), as_of=MONDAY)
    link = _links(by_recipient(outbox(site))["ana@example.org"][0])
    _strip_entry_ids(site)
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        assert _page_titles(http.get(link.rsplit("/", 1)[0]).text) == ALL_TITLES
        assert _page_titles(http.get(link).text) == ["Membership DBA", "Union Data Organizer"]


# ids that name no edition -----------------------------------------------------------------
def test_ids_that_name_no_edition_get_the_404_page(tmp_path: Path) -> None:
    site = digest_site(tmp_path)
    send(load_config(site), as_of=MONDAY)
    link = _links(by_recipient(outbox(site))["ana@example.org"][0])
    slug, edition = link.split("/")[2:]
    assert edition == "Cg"  # posts 1 and 3 of 0-3 (newest first): the DBA and the organizer
    # no post; a fifth post; "Cg" spelt otherwise (stray bits, a zero byte, padding);
    # not base64url; too long for four posts; path tricks
    bad = ["AAAA", "AA", "EA", "Ch", "AAo", "Cg==", "Cg%3D", "C", "!!", "Cg.json", "CgCg",
           "x" * 500, "%2e%2e", "%00", "Cg%0A", "Cg%20"]
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        assert http.get(link).status_code == 200
        for wrong in bad:
            page = http.get(f"/archive/{slug}/{wrong}")
            assert (page.status_code, wrong) == (404, wrong)
            assert "Page not found" in page.text
        assert http.get(f"/archive/2099-01-01/{edition}").status_code == 404
        assert http.get(f"/archive/{slug}/{edition}/more").status_code == 404


def test_edition_pages_kept_rendered_are_bounded(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every subset of a run's posts is a page: a crawler asking for them all must not fill
    memory with rendered pages."""
    monkeypatch.setattr(archive_pages, "EDITION_PAGES", 3)
    site = digest_site(tmp_path)
    send(load_config(site), as_of=MONDAY)
    slug = _links(by_recipient(outbox(site))["ana@example.org"][0]).split("/")[2]
    ids = [archive.edition_id(c) for n in range(1, 5) for c in itertools.combinations(range(4), n)]
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        for edition in ids:
            first = http.get(f"/archive/{slug}/{edition}")
            again = http.get(f"/archive/{slug}/{edition}",
                             headers={"If-None-Match": first.headers["etag"]})
            assert first.status_code == 200 and again.status_code == 304
            assert len(running.web.edition_pages) <= 3
    assert len(ids) == 15


def test_an_edition_id_is_the_set_of_its_posts_written_short() -> None:
    posts = tuple(ArchivedPost(f"P{i}", f"https://x.org/{i}", MONDAY, (), "", "", f"id{i}")
                  for i in range(19))
    run = ArchivedRun("2024-06-10", MONDAY, MONDAY, posts)
    for picked in [(0,), (18,), (2, 5, 7), tuple(range(19)), (17, 3)]:
        edition = archive.edition_id(picked)
        assert len(edition) <= 4 and edition == archive.edition_id(sorted(picked))
        found = archive.edition_posts(run, edition)
        assert found is not None and [p.title for p in found] == [f"P{i}" for i in
                                                                  sorted(picked)]
    assert archive.edition_posts(run, archive.edition_id([19])) is None  # past the last post
    assert archive.indexes_in(run, [("id7", "elsewhere"), ("id1", "")]) == [7, 1]
    assert archive.indexes_in(run, [("gone", "https://x.org/1")]) is None


# digest preview --subscriber --------------------------------------------------------------
def _preview(site: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(["--config", str(site), "preview", "--as-of", MONDAY.isoformat(),
                    "--out", str(out), *extra])


def test_preview_of_one_subscriber_is_what_they_receive(tmp_path: Path) -> None:
    site = digest_site(tmp_path)
    code, _output, err = _preview(site, tmp_path / "look", "--subscriber", "Ana@Example.org ")
    assert code == 0, err
    text = (tmp_path / "look" / "ana_at_example.org.txt").read_text(encoding="utf-8")
    page = (tmp_path / "look" / "ana_at_example.org.html").read_text(encoding="utf-8")
    for body in (text, page):
        assert "{recipient." not in body
        assert "Hi Ana Gómez," in body and "ana@example.org subscribed" in body
        assert f"{BASE}/unsubscribe/{token('ana@example.org', 'unsubscribe')}" in body
        assert f"{BASE}/preferences/{token('ana@example.org', 'preferences')}" in body
        assert "Membership DBA" in body and "Campaign Analyst" not in body
    # the link it shows is the one the real digest will carry
    assert send(load_config(site), as_of=MONDAY).runs
    sent = _links(by_recipient(outbox(site))["ana@example.org"][0])
    assert f"View this digest in your browser: {BASE}{sent}\n" in text
    assert f'href="{BASE}{sent}"' in page


def test_preview_of_one_subscriber_follows_their_tags_chosen_on_the_web(tmp_path: Path) -> None:
    site = digest_site(tmp_path)
    with WebServer(load_config(site)) as running, httpx.Client(base_url=running.url) as http:
        answer = http.post(f"/preferences/{token('ana@example.org', 'preferences')}",
                           data={"action": "save", "mode": "some", "tag": ["analytics"]})
        assert answer.status_code == 200
    code, _output, err = _preview(site, tmp_path / "look", "--subscriber", "ana@example.org")
    assert code == 0, err
    text = (tmp_path / "look" / "ana_at_example.org.txt").read_text(encoding="utf-8")
    assert "Campaign Analyst" in text and "Membership DBA" not in text


def test_preview_without_a_subscriber_still_shows_where_personal_values_go(
        tmp_path: Path) -> None:
    site = digest_site(tmp_path)
    code, _output, err = _preview(site, tmp_path / "look")
    assert code == 0, err
    texts = sorted((tmp_path / "look").glob("*.txt"))
    assert len(texts) == 3
    for path in texts:
        body = path.read_text(encoding="utf-8")
        assert "Unsubscribe: {recipient.unsubscribe_url}" in body
        assert re.search(rf"View this digest in your browser: {BASE}/archive/[0-9-]+/\S+", body)


def test_preview_of_an_unknown_address_names_no_one_else(tmp_path: Path) -> None:
    site = digest_site(tmp_path)
    code, _output, err = _preview(site, tmp_path / "look", "--subscriber", "ana@example.org\x1b[2J")
    assert code == 2
    assert "Traceback" not in err and "\x1b" not in err
    assert "ana@example.org?[2J is not a subscriber" in err
    others = [s["email"] for s in SUBSCRIBERS] + ["Ana", "Sam"]
    assert not [o for o in others if o in err.replace("ana@example.org?[2J", "")]
    assert not (tmp_path / "look").exists() or not list((tmp_path / "look").iterdir())


def test_preview_of_one_subscriber_without_a_web_front(tmp_path: Path) -> None:
    """No web.base_url: the digest has only the unsubscribe address, and the preview says so."""
    (tmp_path / "subscribers.yaml").write_text(
        "- {email: sam@example.org, name: Sam}\n", encoding="utf-8")
    site = make_site(tmp_path, dict(POSTS), extra={
        "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"}})
    code, _output, err = _preview(site, tmp_path / "look", "--subscriber", "sam@example.org")
    assert code == 0, err
    assert "no web.base_url" in err
    text = (tmp_path / "look" / "sam_at_example.org.txt").read_text(encoding="utf-8")
    assert "Hi Sam," in text and "{recipient." not in text
    assert "View this digest" not in text and "jobs@example.org" in text


def test_preview_of_a_subscriber_with_nothing_new_says_so(tmp_path: Path) -> None:
    site = digest_site(tmp_path, posts={**POSTS, "2024-06-08-x.md": post("X", tags="[x]")})
    code, _output, err = _preview(site, tmp_path / "look", "--subscriber", "nobody@example.org")
    assert code == 0, err
    assert "nobody@example.org has nothing new in this digest" in err
