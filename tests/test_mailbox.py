"""Reading feedback mail from a real Maildir and a real IMAP server (dovecot, started by the
tests): handled messages are marked seen and not read again, every other message is left
exactly as it was, nothing is deleted, and every failure is one clear MailboxError."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_server import ImapServer

from digest.config import BouncesSettings, ImapSettings
from digest.errors import ConfigError, MailboxError
from digest.feedback.mailbox import Incoming, Mailbox, MaildirMailbox, open_mailbox


def message(subject: str, body: str = "Some text.\n") -> bytes:
    return (f"From: mailer-daemon@example.net\r\nTo: bounces@example.org\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.net>"
            f"\r\n\r\n{body}").encode()


def subject(incoming: Incoming) -> str:
    return incoming.data.split(b"Subject: ")[1].split(b"\r\n")[0].decode()


def read_all(mailbox: Mailbox, handle: set[str], limit: int = 100) -> list[str]:
    """The subjects read, in order; those in *handle* are done as handled, the rest not."""
    read = []
    for incoming in mailbox.messages(limit):
        read.append(subject(incoming))
        mailbox.done(incoming, handled=subject(incoming) in handle)
    return read


# Maildir -------------------------------------------------------------------------------

def make_maildir(path: Path) -> Path:
    for folder in ("new", "cur", "tmp"):
        (path / folder).mkdir(parents=True, exist_ok=True)
    return path


def deliver(maildir: Path, name: str, data: bytes, folder: str = "new") -> Path:
    """Deliver as a mail server does: write in tmp/, then rename into place."""
    temporary = maildir / "tmp" / name.partition(":")[0]
    temporary.write_bytes(data)
    target = maildir / folder / name
    os.rename(temporary, target)
    return target


def snapshot(maildir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the Maildir by path: its bytes and mtime."""
    return {str(p.relative_to(maildir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(maildir.rglob("*")) if p.is_file()}


def test_maildir_handled_messages_are_marked_seen_and_the_rest_left_exactly_as_they_were(
        tmp_path: Path) -> None:
    maildir = make_maildir(tmp_path / "Maildir")
    deliver(maildir, "1700000001.a.host", message("bounce one"))
    deliver(maildir, "1700000002.b.host", message("out of office"))
    deliver(maildir, "1700000003.c.host:2,F", message("bounce two"), folder="cur")
    deliver(maildir, "1700000004.d.host:2,", message("a question"), folder="cur")
    before = snapshot(maildir)

    mailbox = MaildirMailbox(maildir)
    read = read_all(mailbox, handle={"bounce one", "bounce two"})

    assert read == ["bounce one", "out of office", "bounce two", "a question"]
    after = snapshot(maildir)
    assert after.pop("cur/1700000001.a.host:2,S") == before.pop("new/1700000001.a.host")
    assert after.pop("cur/1700000003.c.host:2,FS") == before.pop("cur/1700000003.c.host:2,F")
    assert after == before  # the unhandled two: same bytes, same name, same place, same mtime


def test_maildir_does_not_read_seen_messages_or_handled_ones_again(tmp_path: Path) -> None:
    maildir = make_maildir(tmp_path / "Maildir")
    deliver(maildir, "1700000001.a.host:2,S", message("read by a person"), folder="cur")
    deliver(maildir, "1700000002.b.host", message("bounce"))
    deliver(maildir, "1700000003.c.host", message("out of office"))

    assert read_all(MaildirMailbox(maildir), handle={"bounce"}) == ["bounce", "out of office"]
    # without a checkpoint the unhandled one is examined again, the handled one never
    assert read_all(MaildirMailbox(maildir), handle=set()) == ["out of office"]


def test_maildir_checkpoint_lets_the_next_run_read_only_later_mail(tmp_path: Path) -> None:
    maildir = make_maildir(tmp_path / "Maildir")
    old = deliver(maildir, "1700000001.a.host", message("out of office"))
    mailbox = MaildirMailbox(maildir)
    assert read_all(mailbox, handle=set()) == ["out of office"]
    checkpoint = mailbox.checkpoint()
    assert checkpoint == f"maildir:{maildir};ctime={old.stat().st_ctime_ns}"

    # a message delivered after the checkpoint is read; one within the minute of slack
    # before it is examined again (ctimes are coarse)
    deliver(maildir, "1700000002.b.host", message("bounce"))
    assert read_all(MaildirMailbox(maildir, checkpoint=checkpoint), handle={"bounce"}) == \
        ["out of office", "bounce"]
    # ctime cannot be set back: move the checkpoint forward instead, as if the last message
    # examined had come later; one delivered less than a minute before it is examined again,
    # one more than a minute before it is not
    def moved(seconds: float) -> str:
        return f"maildir:{maildir};ctime={old.stat().st_ctime_ns + int(seconds * 1e9)}"

    assert read_all(MaildirMailbox(maildir, checkpoint=moved(59)), handle=set()) == \
        ["out of office"]
    assert read_all(MaildirMailbox(maildir, checkpoint=moved(61)), handle=set()) == []
    # a checkpoint of another mailbox is ignored: every unseen message is examined
    other = f"maildir:{tmp_path / 'Other'};ctime={old.stat().st_ctime_ns + 10**12}"
    assert read_all(MaildirMailbox(maildir, checkpoint=other), handle=set()) == \
        ["out of office"]


def test_maildir_message_not_done_is_offered_again(tmp_path: Path) -> None:
    maildir = make_maildir(tmp_path / "Maildir")
    deliver(maildir, "1700000001.a.host", message("first"))
    deliver(maildir, "1700000002.b.host", message("second"))
    mailbox = MaildirMailbox(maildir)
    for incoming in mailbox.messages(10):
        if subject(incoming) == "second":
            mailbox.done(incoming, handled=True)
    first_ctime = (maildir / "new" / "1700000001.a.host").stat().st_ctime_ns
    checkpoint = mailbox.checkpoint()
    assert checkpoint is None or int(checkpoint.rpartition("=")[2]) < first_ctime
    assert read_all(MaildirMailbox(maildir, checkpoint=checkpoint), handle=set()) == ["first"]


def test_maildir_oversized_message_is_skipped_with_a_warning_and_left_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    maildir = make_maildir(tmp_path / "Maildir")
    big = deliver(maildir, "1700000001.a.host", message("huge", "x" * 5000))
    deliver(maildir, "1700000002.b.host", message("small"))
    mailbox = MaildirMailbox(maildir, max_bytes=1000)
    with caplog.at_level(logging.WARNING):
        assert read_all(mailbox, handle={"huge", "small"}) == ["small"]
    assert "skipped a message of" in caplog.text and str(big) in caplog.text
    assert big.exists()
    checkpoint = mailbox.checkpoint()  # passed: not warned about on every run
    assert checkpoint is not None and int(checkpoint.rpartition("=")[2]) >= \
        big.stat().st_ctime_ns


def test_a_missing_maildir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MailboxError) as raised:
        open_mailbox(BouncesSettings(maildir=tmp_path / "nowhere"))
    assert str(raised.value).startswith(f"{tmp_path / 'nowhere'}: not a Maildir: no new/")
    assert "bounces.maildir" in str(raised.value)


def test_no_mailbox_configured_opens_none() -> None:
    assert open_mailbox(BouncesSettings()) is None


# IMAP ----------------------------------------------------------------------------------

PASSWORD_ENV = "DIGEST_TEST_IMAP_PASSWORD"


@pytest.fixture(scope="module")
def server() -> Iterator[ImapServer]:
    with ImapServer(users={"bounces": "s3cret", "other": "pa55"}) as running:
        yield running


@pytest.fixture
def folder(server: ImapServer, request: pytest.FixtureRequest) -> str:
    """A folder of its own for each test (the server is shared by the module)."""
    name: str = request.node.name
    return "T-" + name.replace("[", "-").replace("]", "")[-40:]


def settings(server: ImapServer, folder: str, **changes: object) -> BouncesSettings:
    values: dict[str, object] = {"host": server.host, "port": server.port,
                                 "username": "bounces", "password_env": PASSWORD_ENV,
                                 "folder": folder, "ca_file": server.ca_file, "timeout": 10}
    values.update(changes)
    return BouncesSettings(imap=ImapSettings(**values))  # type: ignore[arg-type]


def imap(server: ImapServer, folder: str, *, password: str = "s3cret",
         checkpoint: str | None = None, **changes: object) -> Mailbox:
    mailbox = open_mailbox(settings(server, folder, **changes), checkpoint=checkpoint,
                           environ={PASSWORD_ENV: password})
    assert mailbox is not None
    return mailbox


def test_imap_sets_seen_only_on_handled_messages(server: ImapServer, folder: str) -> None:
    bounce = server.append("bounces", message("bounce"), folder=folder)
    human = server.append("bounces", message("a question"), folder=folder)
    flagged = server.append("bounces", message("complaint"), folder=folder, flags="\\Flagged")
    read_before = server.append("bounces", message("read already"), folder=folder,
                                flags="\\Seen")

    with contextlib.closing(imap(server, folder)) as mailbox:
        assert read_all(mailbox, handle={"bounce", "complaint"}) == \
            ["bounce", "a question", "complaint"]

    assert server.flags("bounces", folder) == {
        bounce: {"\\Seen"}, human: set(), flagged: {"\\Flagged", "\\Seen"},
        read_before: {"\\Seen"}}


def test_imap_checkpoint_lets_the_next_run_read_only_later_mail(
        server: ImapServer, folder: str) -> None:
    server.append("bounces", message("out of office"), folder=folder)
    server.append("bounces", message("bounce"), folder=folder)
    with contextlib.closing(imap(server, folder)) as mailbox:
        assert read_all(mailbox, handle={"bounce"}) == ["out of office", "bounce"]
        checkpoint = mailbox.checkpoint()
    server.append("bounces", message("later"), folder=folder)

    with contextlib.closing(imap(server, folder, checkpoint=checkpoint)) as mailbox:
        assert read_all(mailbox, handle=set()) == ["later"]
    with contextlib.closing(imap(server, folder)) as mailbox:  # no checkpoint: all unseen
        assert read_all(mailbox, handle=set()) == ["out of office", "later"]


def test_imap_message_not_done_is_offered_again(server: ImapServer, folder: str) -> None:
    server.append("bounces", message("first"), folder=folder)
    server.append("bounces", message("second"), folder=folder)
    with contextlib.closing(imap(server, folder)) as mailbox:
        incoming = next(iter(mailbox.messages(10)))
        assert subject(incoming) == "first"
        checkpoint = mailbox.checkpoint()
    assert checkpoint is None
    with contextlib.closing(imap(server, folder, checkpoint=checkpoint)) as mailbox:
        assert read_all(mailbox, handle=set(), limit=1) == ["first"]
        checkpoint = mailbox.checkpoint()
    with contextlib.closing(imap(server, folder, checkpoint=checkpoint)) as mailbox:
        assert read_all(mailbox, handle=set()) == ["second"]


def test_imap_oversized_message_is_skipped_with_a_warning(
        server: ImapServer, folder: str, caplog: pytest.LogCaptureFixture) -> None:
    big = server.append("bounces", message("huge", "x" * 5000), folder=folder)
    server.append("bounces", message("small"), folder=folder)
    mailbox = open_mailbox(settings(server, folder), max_bytes=1000,
                           environ={PASSWORD_ENV: "s3cret"})
    assert mailbox is not None
    with contextlib.closing(mailbox), caplog.at_level(logging.WARNING):
        assert read_all(mailbox, handle={"huge", "small"}) == ["small"]
    assert f";UID={big}: skipped a message of" in caplog.text
    assert server.flags("bounces", folder)[big] == set()


def test_imap_over_starttls(server: ImapServer, folder: str) -> None:
    server.append("bounces", message("bounce"), folder=folder)
    with contextlib.closing(imap(server, folder, port=server.starttls_port,
                                 security="starttls")) as mailbox:
        assert read_all(mailbox, handle={"bounce"}) == ["bounce"]


def test_imap_wrong_password_is_a_clear_error(server: ImapServer, folder: str) -> None:
    with pytest.raises(MailboxError) as raised:
        imap(server, folder, password="wrong")
    assert f"imaps://bounces@{server.host}:{server.port}/{folder}: the server refused the " \
           f"login of bounces" in str(raised.value)
    assert PASSWORD_ENV in str(raised.value)


def test_imap_missing_password_variable_is_a_clear_error(
        server: ImapServer, folder: str) -> None:
    with pytest.raises(MailboxError, match=f"the environment variable {PASSWORD_ENV} is not "
                                           f"set"):
        open_mailbox(settings(server, folder), environ={})


def test_imap_untrusted_certificate_is_a_clear_tls_error(
        server: ImapServer, folder: str) -> None:
    for security, port in (("tls", server.port), ("starttls", server.starttls_port)):
        with pytest.raises(MailboxError) as raised:
            imap(server, folder, ca_file=None, security=security, port=port)
        assert "certificate cannot be verified" in str(raised.value)
        assert "bounces.imap.ca_file" in str(raised.value)


def test_imap_certificate_for_another_host_is_a_clear_tls_error(folder: str) -> None:
    with ImapServer(cert_names=("mail.example.org",)) as other, \
            pytest.raises(MailboxError) as raised:
        imap(other, folder)
    assert "certificate cannot be verified" in str(raised.value)
    assert "set bounces.imap.host" in str(raised.value)


def test_imap_missing_folder_is_a_clear_error(server: ImapServer) -> None:
    with pytest.raises(MailboxError) as raised:
        imap(server, "No Such Folder")
    assert "cannot open the folder 'No Such Folder'" in str(raised.value)
    assert "bounces.imap.folder" in str(raised.value)


def test_imap_refused_connection_is_a_clear_error(server: ImapServer, folder: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MailboxError) as raised:
        imap(server, folder, port=port)
    assert str(raised.value).startswith(f"imaps://bounces@127.0.0.1:{port}/{folder}: "
                                        f"connection refused")


def test_imap_folder_with_non_ascii_name_is_found(server: ImapServer) -> None:
    server.append("bounces", message("bounce"), folder="R&APw-ckl&AOQ-ufer")  # RFC 3501 5.1.3
    with contextlib.closing(imap(server, "Rückläufer")) as mailbox:
        assert read_all(mailbox, handle={"bounce"}) == ["bounce"]


def test_imap_control_characters_are_refused_before_connecting(server: ImapServer) -> None:
    with pytest.raises(MailboxError, match="control character"):
        imap(server, "INBOX\r\nA1 DELETE INBOX")
    assert server.flags("bounces") is not None  # INBOX still there


def test_imap_unreadable_ca_file_is_a_config_error(server: ImapServer, folder: str,
                                                   tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"bounces\.imap\.ca_file cannot be loaded"):
        imap(server, folder, ca_file=tmp_path / "ca.pem")
