"""Our OPML files as real readers import them: newsboat and rss2email each subscribe to every
feed once, and rss2email, run against the site served on a loopback port, mails each entry of
each feed once, with the whole post in its default text mode. An OPML that listed both
formats made rss2email mail every post twice (one post 38 times over the tag feeds)."""

from __future__ import annotations

import configparser
import email
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from conftest import build_site, make_site, output, parse_feed, post
from smtp_server import SmtpServer

LAST_PARAGRAPH = "Apply by Friday with a cover letter."
POSTS = {
    "2019-03-01-data-engineer.md": post("Data engineer", date='"2019-03-01 09:00:00"',
                                        tags="[python, Data Science]",
                                        body=f"First paragraph.\n\nSecond one.\n\n"
                                             f"{LAST_PARAGRAPH}\n"),
    "2019-03-02-it-support.md": post("IT support", date='"2019-03-02 09:00:00"',
                                     tags="[IT]"),
    "2019-03-04-python-dev.md": post("Python dev", date='"2019-03-04 09:00:00"',
                                     tags="[python]", category="Remote"),
}
R2E = str(Path(sys.executable).with_name("r2e"))  # the one installed beside our tests


def _outline_urls(opml: Path) -> list[str]:
    return [o.get("xmlUrl", "") for o in ET.parse(opml).getroot().iter("outline")]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Not on the test's stderr."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """The site built for, and served from, a loopback address: readers can fetch its feeds."""
    handler = functools.partial(_Quiet, directory=str(tmp_path / "public"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = make_site(tmp_path, POSTS, url=url)
    build_site(config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield config
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("newsboat") is None, reason="newsboat is not installed")
@pytest.mark.parametrize("name", ["feeds.opml", "feeds-rss.opml"])
def test_newsboat_imports_every_feed_once(tmp_path: Path, name: str) -> None:
    config = make_site(tmp_path, POSTS)
    build_site(config)
    opml = output(config) / name
    urls, home = tmp_path / "urls", tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home), XDG_DATA_HOME=str(home))
    done = subprocess.run(["newsboat", "-u", str(urls), "-c", str(tmp_path / "cache.db"),
                           "-C", "/dev/null", "-i", str(opml)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    imported = [line for line in urls.read_text().splitlines() if line.strip()]
    expected = _outline_urls(opml)
    assert len(expected) == 1 + 3 + 1  # the site, its three tags and its category
    assert sorted(imported) == sorted(expected)
    assert len(set(imported)) == len(imported)


def _r2e(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([R2E, "-c", str(home / "r2e.cfg"), "-d", str(home / "r2e.json"),
                           *args], capture_output=True, text=True, timeout=120, check=False)


def test_rss2email_imports_each_feed_once_and_mails_each_entry_once(tmp_path: Path,
                                                                    served: Path) -> None:
    home = tmp_path / "r2e"
    home.mkdir()
    with SmtpServer() as smtp:
        assert _r2e(home, "new", "reader@example.net").returncode == 0
        settings = configparser.ConfigParser(interpolation=None)
        settings.read(home / "r2e.cfg")
        settings["DEFAULT"].update({"email-protocol": "smtp", "smtp-server": smtp.host,
                                    "smtp-port": str(smtp.port), "smtp-ssl": "False",
                                    "smtp-auth": "False"})
        with (home / "r2e.cfg").open("w") as file:
            settings.write(file)
        opml = output(served) / "feeds.opml"
        imported = _r2e(home, "opmlimport", str(opml))
        assert imported.returncode == 0, imported.stderr
        listed = _r2e(home, "list").stdout.splitlines()
        assert len(listed) == len(_outline_urls(opml)) == 5, listed
        ran = _r2e(home, "run")
        assert ran.returncode == 0, ran.stderr
        mails = [email.message_from_bytes(r.data) for r in smtp.received]
    sent = Counter((m["X-RSS-Feed"], m["X-RSS-ID"]) for m in mails)
    assert sent and max(sent.values()) == 1, sent
    expected = {url: len(parse_feed(output(served) / url.split("/", 3)[3]).entries)
                for url in _outline_urls(opml)}
    assert Counter(feed for feed, _ in sent) == Counter(expected)
    # rss2email's default text mode reads the Atom entry: the whole post, not its summary;
    # its subject is the entry's title by default
    engineer = next(m for m in mails if m["Subject"] == "Data engineer")
    assert LAST_PARAGRAPH in _text(engineer)


def _text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(part.get_content_charset() or "utf-8")
