"""The digest run end to end: real posts, a real subscribers file, real SQLite, the real
Maildir outbox; each behaviour checked by reading back the messages that were written."""

from __future__ import annotations

import codecs
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import post, run_cli, write_posts
from helpers import MONDAY, SECRET, SUBSCRIBERS, WEEK, by_recipient, digest_site, outbox, titles

from digest.config import load_config
from digest.delivery.compose import edition_order
from digest.delivery.outbox import MaildirTransport
from digest.delivery.preview import dry_run, preview
from digest.delivery.send import send, send_test
from digest.edition.layout import Edition, LaidOutEdition, Layout, Recipient
from digest.state.open import open_state
from digest.state.sendlog import Run, SendLog
from digest.state.store import Store
from digest.subscribers.load import Packed, Subscriber


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def test_first_digest_gives_each_subscriber_the_new_posts_in_their_tags(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    report = send(load_config(cfg), as_of=MONDAY)
    got = by_recipient(outbox(cfg))
    assert set(got) == {"ana@example.org", "dev@example.org", "all@example.org"}
    assert titles(got["ana@example.org"][0]) == ["Union Data Organizer", "Membership DBA"]
    assert titles(got["dev@example.org"][0]) == ["Campaign Analyst"]
    assert titles(got["all@example.org"][0]) == [
        "Union Data Organizer", "Campaign Analyst", "Membership DBA", "Analytics Intern"]
    (run,) = report.runs
    assert run.posts == 4
    assert run.counts == {"sent": 3, "empty": 1}


def test_newest_post_comes_first(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    text = by_recipient(outbox(cfg))["all@example.org"][0].get_body(("plain",))
    assert text is not None
    content = text.get_content()
    assert content.index("Analytics Intern") < content.index("Union Data Organizer")


def test_sending_twice_for_the_same_period_sends_nothing_new(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    again = send(load_config(cfg), as_of=MONDAY)
    assert len(outbox(cfg)) == 3
    assert again.nothing_new is not None and "already made" in again.nothing_new


def test_subscriber_added_since_gets_the_digest_of_the_same_period(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    digest_site(tmp_path, subscribers=[*SUBSCRIBERS, {"email": "new@example.org"}])
    send(load_config(cfg), as_of=MONDAY)
    got = by_recipient(outbox(cfg))
    assert [len(v) for v in got.values()] == [1, 1, 1, 1]
    assert "new@example.org" in got


def test_next_week_carries_only_posts_not_sent_before(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    write_posts(tmp_path, {"2024-06-12-week-two.md": post("Week Two Job", tags="[union]")})
    send(load_config(cfg), as_of=MONDAY + WEEK)
    ana = by_recipient(outbox(cfg))["ana@example.org"]
    assert [titles(m) for m in ana] == [["Union Data Organizer", "Membership DBA"],
                                        ["Week Two Job"]]


def test_late_post_dated_inside_a_sent_period_goes_into_the_next_digest(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    # committed after the first digest went out, dated inside its period
    write_posts(tmp_path, {"2024-06-08-late.md": post("Late Job", tags="[union]")})
    send(load_config(cfg), as_of=MONDAY + WEEK)
    ana = by_recipient(outbox(cfg))["ana@example.org"]
    assert titles(ana[1]) == ["Late Job"]


def test_edited_or_redated_post_is_never_sent_twice(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    # re-dated in front matter into next week, and edited
    write_posts(tmp_path, {"2024-06-06-dba.md": post("Membership DBA", body="Edited.\n",
                                                     tags="[union, datamanagement]",
                                                     date="2024-06-12")})
    # renamed to a new date: same slug and title, so the same job
    (tmp_path / "_posts" / "2024-06-04-union-organizer-data.md").rename(
        tmp_path / "_posts" / "2024-06-13-union-organizer-data.md")
    write_posts(tmp_path, {"2024-06-12-week-two.md": post("Week Two Job", tags="[union]")})
    send(load_config(cfg), as_of=MONDAY + WEEK)
    ana = by_recipient(outbox(cfg))["ana@example.org"]
    assert titles(ana[1]) == ["Week Two Job"]


def test_missed_week_is_caught_up_in_the_next_digest(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    write_posts(tmp_path, {"2024-06-12-week-two.md": post("Week Two Job", tags="[union]"),
                           "2024-06-20-late.md": post("Late Job", tags="[union]")})
    send(load_config(cfg), as_of=MONDAY + 2 * WEEK)  # nothing was sent on June 17
    ana = by_recipient(outbox(cfg))["ana@example.org"]
    assert titles(ana[1]) == ["Week Two Job", "Late Job"] or \
        sorted(titles(ana[1])) == ["Late Job", "Week Two Job"]


def test_no_new_posts_means_no_run_and_no_mail(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    report = send(load_config(cfg), as_of=MONDAY + WEEK)
    assert report.runs == []
    assert report.nothing_new is not None and "no new posts" in report.nothing_new
    assert len(outbox(cfg)) == 3


def test_unsubscribed_address_gets_nothing_whatever_the_yaml_says(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    code, out, _ = run_cli(["--config", str(cfg), "unsubscribe", "ANA@Example.org"])
    assert code == 0 and "unsubscribed" in out
    report = send(load_config(cfg), as_of=MONDAY)
    assert "ana@example.org" not in by_recipient(outbox(cfg))
    assert report.runs[0].counts["suppressed"] == 1
    code, out, _ = run_cli(["--config", str(cfg), "resubscribe", "ana@example.org"])
    assert code == 0 and "resubscribed" in out


def test_broken_subscribers_file_keeps_the_last_good_list(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    (tmp_path / "subscribers.yaml").write_text("- email: [unclosed\n", encoding="utf-8")
    write_posts(tmp_path, {"2024-06-12-week-two.md": post("Week Two Job", tags="[union]")})
    send(load_config(cfg), as_of=MONDAY + WEEK)
    assert "last good copy" in caplog.text
    assert "subscribers.yaml" in caplog.text
    assert len(by_recipient(outbox(cfg))["ana@example.org"]) == 2


def test_the_last_good_copy_is_the_file_as_read_and_not_rewritten_unchanged(
        tmp_path: Path) -> None:
    """The file's bytes are kept (its BOM left out), and a send that finds the file as kept,
    even as a copy an earlier digest kept as text, leaves that copy alone."""
    cfg = digest_site(tmp_path)
    path = tmp_path / "subscribers.yaml"
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())

    def kept() -> tuple[tuple[str, str, str] | None, str]:
        store = Store.open(tmp_path / "state")
        try:
            kind = store.db.execute("SELECT typeof(text) FROM subscribers_snapshot").fetchone()
            return SendLog(store).snapshot(), kind[0]
        finally:
            store.close()

    send(load_config(cfg), as_of=MONDAY)
    first, _ = kept()
    assert first is not None and first[:2] == (str(path), path.read_text(encoding="utf-8-sig"))
    store = Store.open(tmp_path / "state")
    with store.atomic() as db:  # as digest kept it before it wrote bytes
        db.execute("UPDATE subscribers_snapshot SET text = CAST(text AS TEXT)")
    store.close()
    assert kept() == (first, "text")
    send(load_config(cfg), as_of=MONDAY + WEEK)
    assert kept() == (first, "text")  # unchanged: not written again
    path.write_text(path.read_text(encoding="utf-8-sig") + "- email: new@example.org\n",
                    encoding="utf-8")
    send(load_config(cfg), as_of=MONDAY + 2 * WEEK)
    now, kind = kept()
    assert now is not None and now[1].endswith("new@example.org\n") and now[2] != first[2]
    assert kind == "blob"


def test_bad_subscriber_entry_is_skipped_and_the_others_served(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path, subscribers=[*SUBSCRIBERS, {"email": "not an address"}])
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 1
    assert "subscribers.yaml:" in err and "not an address" in err
    assert len(outbox(cfg)) == 3


def test_links_are_signed_and_list_unsubscribe_is_one_click(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    message = by_recipient(outbox(cfg))["ana@example.org"][0]
    header = str(message["List-Unsubscribe"])
    assert "https://jobs.example.org/digest/unsubscribe/" in header
    assert "mailto:jobs@example.org" in header
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert "ana@example.org" not in header  # the token carries no address
    other = by_recipient(outbox(cfg))["all@example.org"][0]
    assert str(other["List-Unsubscribe"]) != header


def test_message_id_is_the_same_for_the_same_digest_and_subscriber(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    send(load_config(cfg), as_of=MONDAY)
    first = {m["To"].addresses[0].addr_spec: m["Message-ID"] for m in outbox(cfg)}
    store = Store.open(tmp_path / "state")
    try:
        rows = dict(store.db.execute("SELECT subscriber, message_id FROM deliveries"
                                     " WHERE state = 'sent'").fetchall())
    finally:
        store.close()
    assert rows == first
    assert len(set(first.values())) == 3


def test_dry_run_and_preview_send_and_record_nothing(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    dry = dry_run(load_config(cfg), as_of=MONDAY)
    assert (dry.messages, dry.empty, dry.posts) == (3, 1, 4)
    result = preview(load_config(cfg), as_of=MONDAY, out=tmp_path / "preview")
    assert result.editions == 3
    assert {p.suffix for p in result.files} == {".html", ".txt", ".eml"}
    assert not (tmp_path / "state" / "outbox").exists()
    store = Store.open(tmp_path / "state")
    try:
        assert SendLog(store).latest_run() is None
    finally:
        store.close()
    report = send(load_config(cfg), as_of=MONDAY)  # the real run still sends everything
    assert report.runs[0].counts["sent"] == 3


def test_test_copy_goes_to_one_address_and_is_not_logged(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    outcome = send_test(load_config(cfg), as_of=MONDAY, to="me@example.net",
                        subscriber="ana@example.org")
    assert outcome is not None and outcome.status == "sent"
    (message,) = outbox(cfg)
    assert message["To"].addresses[0].addr_spec == "me@example.net"
    assert titles(message) == ["Union Data Organizer", "Membership DBA"]
    report = send(load_config(cfg), as_of=MONDAY)
    assert report.runs[0].counts["sent"] == 3


def test_send_without_from_is_a_config_error(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    text = cfg.read_text(encoding="utf-8").replace("from: Jobs Board <jobs@example.org>\n", "")
    cfg.write_text(text, encoding="utf-8")
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 2
    assert "digest.from" in err


def test_missing_secret_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = digest_site(tmp_path)
    monkeypatch.delenv("DIGEST_SECRET")
    code, _out, err = run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])
    assert code == 2
    assert "DIGEST_SECRET" in err
    assert not os.path.exists(tmp_path / "state" / "outbox")


def test_check_reports_subscriber_problems_with_file_and_line(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path, subscribers=[*SUBSCRIBERS, {"email": "bad@@example.org"},
                                             {"email": "x@example.org", "tags": ["unoin"]}])
    code, out, err = run_cli(["--config", str(cfg), "check", "--now", MONDAY.isoformat()])
    assert code == 1
    assert "subscribers.yaml:" in out and "bad@@example.org" in out
    assert "unoin" in out and "union" in out  # did you mean
    assert "5 subscribers OK; 1 skipped, 2 warnings" in err  # research, unoin


def test_unsubscribe_during_a_send_stops_mail_not_yet_sent(tmp_path: Path) -> None:
    """Another process (the web front) unsubscribes someone while the run is going."""
    from digest.delivery.outbox import MaildirTransport
    from digest.delivery.transport import Record

    cfg = digest_site(tmp_path)
    config = load_config(cfg)

    class UnsubscribeMidway(MaildirTransport):
        async def deliver(self, messages: Any, record: Record, *, stop: Any = None,
                          current: Any = None) -> None:
            async def first_then_unsubscribe() -> Any:
                async for outgoing in messages:
                    yield outgoing
                    if outgoing.key == "ana@example.org":  # file order: ana first
                        other = Store.open(tmp_path / "state")  # a second connection
                        try:
                            SendLog(other).suppress("all@example.org", "web")
                        finally:
                            other.close()

            await super().deliver(first_then_unsubscribe(), record, stop=stop, current=current)

    report = send(config, as_of=MONDAY,
                  transport=UnsubscribeMidway(tmp_path / "state" / "outbox"))
    assert set(by_recipient(outbox(cfg))) == {"ana@example.org", "dev@example.org"}
    assert report.runs[0].counts == {"sent": 2, "suppressed": 1, "empty": 1}


def test_a_resumed_run_looks_each_subscriber_up_in_the_list_as_it_is_now(
        tmp_path: Path) -> None:
    """Subscribers are looked up batch by batch, in the list read by this send: one removed
    from the file since the run began gets nothing, one added gets this digest, a tag
    choice made on the web in between is honoured, and the one already served is not
    served again."""
    from digest.delivery.outbox import MaildirTransport
    from digest.delivery.transport import Record
    from digest.errors import DeliveryPaused

    cfg = digest_site(tmp_path)

    class PauseAfterOne(MaildirTransport):
        async def deliver(self, messages: Any, record: Record, *, stop: Any = None,
                          current: Any = None) -> None:
            async def first() -> Any:
                async for outgoing in messages:
                    yield outgoing
                    return

            await super().deliver(first(), record, stop=stop, current=current)
            raise DeliveryPaused("the relay went away", 1)

    report = send(load_config(cfg), as_of=MONDAY,
                  transport=PauseAfterOne(tmp_path / "state" / "outbox"))
    assert report.paused and set(by_recipient(outbox(cfg))) == {"ana@example.org"}
    digest_site(tmp_path, subscribers=[SUBSCRIBERS[0], SUBSCRIBERS[2], SUBSCRIBERS[3],
                                       {"email": "new@example.org", "tags": ["union"]}])
    store = Store.open(tmp_path / "state")
    try:
        SendLog(store).set_preferences("all@example.org", ["research"])  # no post has it
    finally:
        store.close()
    report = send(load_config(cfg), as_of=MONDAY)
    got = by_recipient(outbox(cfg))
    assert {k: len(v) for k, v in got.items()} == {"ana@example.org": 1, "new@example.org": 1}
    # dev@ was removed from the file, all@ now follows nothing new, nobody@ never did
    assert report.runs[0].counts == {"sent": 2, "suppressed": 1, "empty": 2}


def test_each_distinct_edition_is_rendered_once_however_subscribers_are_ordered(
        tmp_path: Path) -> None:
    tags = [f"tag{i}" for i in range(20)]
    posts = {f"2024-06-0{4 + i % 4}-job-{i}.md": post(f"Job {i}", tags=f"[{tag}]")
             for i, tag in enumerate(tags)}
    # two subscribers per tag, interleaved: tag0, tag1, … tag19, tag0, tag1, …
    subscribers = [{"email": f"u{n}-{tag}@example.org", "tags": [tag]}
                   for n in range(2) for tag in tags]
    cfg = digest_site(tmp_path, posts=posts, subscribers=subscribers)
    dry = dry_run(load_config(cfg), as_of=MONDAY)
    assert (dry.messages, dry.editions) == (40, 20)
    report = send(load_config(cfg), as_of=MONDAY)
    assert report.runs[0].counts == {"sent": 40}


def test_batches_claimed_in_turn_share_editions_so_each_is_laid_out_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries are claimed smtp.claim_batch at a time in the order they were added, and
    only the last few editions are kept laid out: in file order (20 tags interleaved),
    batches of 3 laid every edition out twice; added grouped by tags, once."""
    tags = [f"tag{i}" for i in range(20)]
    posts = {f"2024-06-0{4 + i % 4}-job-{i}.md": post(f"Job {i}", tags=f"[{tag}]")
             for i, tag in enumerate(tags)}
    subscribers = [{"email": f"u{n}-{tag}@example.org", "tags": [tag]}
                   for n in range(2) for tag in tags]
    cfg = digest_site(tmp_path, posts=posts, subscribers=subscribers)
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text + "smtp: {host: localhost, port: 2525, claim_batch: 3}\n",
                   encoding="utf-8")
    laid_out: list[str] = []
    real = Layout.edition

    def counted(self: Layout, edition: Edition, first: Recipient | None = None
                ) -> LaidOutEdition:
        laid_out.append(" ".join(edition.followed or ()))
        return real(self, edition, first)

    monkeypatch.setattr(Layout, "edition", counted)
    report = send(load_config(cfg), as_of=MONDAY,
                  transport=MaildirTransport(tmp_path / "state" / "outbox"))
    assert report.runs[0].counts == {"sent": 40}
    assert sorted(laid_out) == sorted(tags)  # each once
    sent = [str(m["To"].addresses[0].addr_spec) for m in outbox(cfg)]
    assert sorted(sent) == sorted(str(s["email"]) for s in subscribers)  # everyone, once


def test_a_lease_lapsing_while_a_sender_looks_is_claimed_before_the_sender_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender that finds nothing to claim looks at the other nodes' leases before it
    ends; one that lapses between that claim and the look leaves its rows claimable with
    nobody to take them. The sender claims once more: it used to end there, with those rows
    unsent and the digest closed as paused (seen in CI: the SIGSTOP test of
    test_multi_sender, a sender frozen past its lease)."""
    subscribers = [{"email": f"u{n}@example.org", "tags": ["union"]} for n in range(6)]
    cfg = digest_site(tmp_path, subscribers=subscribers)
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text + "smtp: {host: localhost, port: 2525, claim_batch: 2}\n",
                   encoding="utf-8")
    other = "elsewhere:1"  # a node on another machine: alive as long as its lease lasts
    real_claim, real_leases = SendLog.claim, SendLog.leases
    looks: list[dict[str, int]] = []
    taken: list[tuple[str, str, int]] = []

    def claim(self: SendLog, run: Run, node: str, limit: int, lease_seconds: float, *,
              since: datetime | None = None) -> list[tuple[str, str, int]]:
        if not taken:  # before the sender's first claim, the other takes a batch
            taken.extend(real_claim(self, run, other, limit, 3600, since=since))
        return real_claim(self, run, node, limit, lease_seconds, since=since)

    def leases(self: SendLog, run: Run) -> dict[str, int]:
        if not looks:  # the sender's first look, once it found nothing left to claim
            with self.store.atomic() as db:  # the other's lease runs out just now
                db.execute("UPDATE deliveries SET lease_until = 0 WHERE lease_owner = ?",
                           (other,))
        looks.append(real_leases(self, run))
        return looks[-1]

    monkeypatch.setattr(SendLog, "claim", claim)
    monkeypatch.setattr(SendLog, "leases", leases)
    report = send(load_config(cfg), as_of=MONDAY,
                  transport=MaildirTransport(tmp_path / "state" / "outbox"))
    # the race was run: the other took a batch, and its lease was gone at the first look
    assert len(taken) == 2 and other not in looks[0]
    assert report.runs[0].counts == {"sent": 6}
    state = open_state(load_config(cfg))
    try:
        run = state.latest_run()
        assert run is not None and state.run_state(run) == "done"
    finally:
        state.close()
    sent = [str(m["To"].addresses[0].addr_spec) for m in outbox(cfg)]
    assert sorted(sent) == sorted(str(s["email"]) for s in subscribers)  # everyone, once


def test_a_send_lays_each_edition_out_for_its_recipients_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recipients without a name: each edition's page is laid out once, for them, not a
    second time for a recipient with every value (which only previews show)."""
    subscribers = [{"email": f"u{n}-{tag}@example.org", "tags": [tag]}
                   for n in range(3) for tag in ("union", "analytics")]
    cfg = digest_site(tmp_path, subscribers=subscribers)
    pages: list[bool] = []
    real = Layout._page

    def counted(self: Layout, context: dict[str, Any]) -> str:
        pages.append(context["recipient"].name is not None)
        return real(self, context)

    monkeypatch.setattr(Layout, "_page", counted)
    report = send(load_config(cfg), as_of=MONDAY,
                  transport=MaildirTransport(tmp_path / "state" / "outbox"))
    assert report.runs[0].counts == {"sent": 6}
    assert pages == [False, False]  # two editions, each laid out once, for no name
    assert all(m["To"].addresses[0].display_name == "" for m in outbox(cfg))


def test_edition_order_groups_by_the_tags_in_force() -> None:
    """Tags chosen on the web (preferences) count, not the file's; groups in first-seen
    order, file order within; each subscriber once."""
    subs = [Subscriber("a@x.org", None, ("union",)), Subscriber("b@x.org", None, ("data",)),
            Subscriber("c@x.org", None, ("union",)), Subscriber("d@x.org", None, ("data",)),
            Subscriber("e@x.org", None, ("data",), ("union",)),
            Subscriber("f@x.org", None, None), Subscriber("g@x.org", None, ("data",))]
    assert [key for key, _ in edition_order(subs, {})] == [
        "a@x.org", "c@x.org", "b@x.org", "d@x.org", "g@x.org", "e@x.org", "f@x.org"]
    chosen = {"b@x.org": ("union",), "g@x.org": None}
    assert [key for key, _ in edition_order(Packed(subs), chosen)] == [
        "a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org", "f@x.org", "g@x.org"]
    # the key is the address lowercased, the address stays as written; a preference is
    # found by the key
    mixed = [Subscriber("Ann@X.org", None, ("data",)), Subscriber("bo@x.org", None, ("union",)),
             Subscriber("cy@x.org", None, ("data",))]
    assert list(edition_order(mixed, {"ann@x.org": ("union",)})) == [
        ("ann@x.org", "Ann@X.org"), ("bo@x.org", "bo@x.org"), ("cy@x.org", "cy@x.org")]


def test_long_excerpt_is_cut_alike_in_html_and_text(tmp_path: Path) -> None:
    long_body = " ".join(f"word{i}" for i in range(400)) + "\n"
    cfg = digest_site(tmp_path, posts={
        "2024-06-05-long.md": post("Long Job", body=long_body, tags="[union]")})
    send(load_config(cfg), as_of=MONDAY)
    message = by_recipient(outbox(cfg))["ana@example.org"][0]
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    assert "word399" not in html_part.get_content()
    assert "word399" not in text_part.get_content()
    assert "word30 " in html_part.get_content() and "word30" in text_part.get_content()
