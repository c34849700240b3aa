"""Control and bidi formatting characters from posts, tags and subscriber files never reach
a header's display text or a log line, where they could forge a line or reorder one."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from helpers import SENT, build, parse

from digest.edition.layout import DigestPost, Edition, Recipient
from digest.util.logs import JsonFormatter, TextFormatter

RLO = "\u202e"
BIDI = ["\u202e", "\u202d", "\u202a", "\u202b", "\u202c", "\u2066", "\u2067", "\u2068",
        "\u2069", "\u200e", "\u200f", "\u061c"]


@pytest.mark.parametrize("mark", BIDI)
def test_bidi_characters_are_dropped_from_the_subject_and_the_to_name(mark: str) -> None:
    post = DigestPost(f"Data {mark}gnp.exe", "https://jobs.example.org/x/", SENT,
                      (f"union{mark}", f"an{mark}alytics"), (), "text", "<p>text</p>")
    ed = Edition(SENT - timedelta(days=7), SENT, (post,), (f"union{mark}",), None)
    raw, _r, rendered = build(Recipient("a@example.net", f"Ana{mark}gnp.exe"), ed)
    message = parse(raw)
    assert mark not in str(message["Subject"]) and mark not in str(message["To"])
    assert mark not in rendered.subject
    assert str(message["To"]).startswith("Anagnp.exe <") or "Anagnp.exe" in str(message["To"])
    assert "union" in str(message["Subject"])


def _line(formatter: logging.Formatter, message: str, *args: object,
          exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("digest.test_invisible")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error(message, *args, exc_info=exc)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_tag_holding_a_newline_cannot_forge_a_text_log_line() -> None:
    tag = "union\r\n2024-06-10 09:00:00 INFO  digest finished: 0 failed"
    out = _line(TextFormatter(), "feeds rebuilt for tag %s", tag)
    assert out.count("\n") == 1 and "\r" not in out
    assert "union\\r\\n2024-06-10" in out


def test_bidi_characters_show_as_escapes_in_text_and_json_logs() -> None:
    for formatter in (TextFormatter(), JsonFormatter()):
        out = _line(formatter, "unsubscribed %s", f"ana{RLO}gro.elpmaxe@")
        assert RLO not in out and "\\u202e" in out
    record = json.loads(_line(JsonFormatter(), "name %s", f"a{RLO}b\u2028c"))
    assert record["message"] == f"name a{RLO}b\u2028c"  # escaped on the wire, exact when read


def test_a_traceback_cannot_start_a_line_of_its_own() -> None:
    try:
        raise ValueError("bad tag\n2024-06-10 09:00:00 INFO  forged")
    except ValueError as exc:
        out = _line(TextFormatter(), "digest not sent", exc=exc)
    lines = out.splitlines()
    assert len(lines) > 2
    assert all(line.startswith("    ") for line in lines[1:]), out


def test_one_shot_commands_log_through_the_same_escaping_as_the_daemon() -> None:
    """`digest send`, `build`… set up their own log handler in cli.main: it must be the
    escaping one too, so a CR/LF or U+202E in a tag or a server's reply stays on its line."""
    import subprocess
    import sys

    script = ("import logging, sys\n"
              "from digest.cli import main\n"
              "try:\n    main(['--config', sys.argv[2], 'status'])\n"
              "except SystemExit:\n    pass\n"  # main's own setup ran; no config, exit 2
              "sys.stderr.write('--\\n')\n"
              "logging.getLogger('digest.send').warning('reply %s', sys.argv[1])\n")
    reply = f"550 no\r\nINFO forged {RLO}line"
    done = subprocess.run([sys.executable, "-c", script, reply, "/nonexistent/config.yaml"],
                          capture_output=True, text=True, timeout=60, check=True)
    logged = done.stderr.split("--\n", 1)[1]
    assert logged == "WARNING reply 550 no\\r\\nINFO forged \\u202eline\n"
