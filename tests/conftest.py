"""Helpers that write real sites into tmp_path and run digest on them.

A site is a `_posts/` folder of files plus a config.yaml naming it, an output folder and
a state folder, all inside the test's tmp_path. Nothing is mocked: the library, SQLite,
feedgen and feedparser all run for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import pytest
import yaml
from click.testing import CliRunner
from smtp_server import SmtpServer

from digest.cli.commands import main
from digest.config import Config, load_config
from digest.feeds.build import BuildReport, build
from digest.posts.published import Published
from digest.posts.reader import read_posts
from digest.state.store import Store

SITE_URL = "https://jobs.example.org"
SITE_TZ = ZoneInfo("America/New_York")
# a fixed "now" well after every dated post the tests write, unless a test says otherwise
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=SITE_TZ)
PROJECT = Path(__file__).resolve().parent.parent


def make_site(tmp_path: Path, posts: Mapping[str, str | bytes], *,
              feeds: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None, **site_settings: Any) -> Path:
    """Write `_posts/` files and a config.yaml into *tmp_path*; return the config's path.

    *posts* maps a path relative to `_posts/` to its text (written as UTF-8) or raw bytes.
    *site_settings* go under `site:` (url, title and timezone have defaults); *feeds* is the
    `feeds:` section; *extra* adds other top-level keys (written as given).
    """
    posts_dir = tmp_path / "_posts"
    posts_dir.mkdir(parents=True, exist_ok=True)
    write_posts(tmp_path, posts)
    site = {"url": SITE_URL, "title": "Jobs Board", "timezone": "America/New_York"}
    site.update(site_settings)
    config: dict[str, Any] = {"site": site, "posts": str(posts_dir),
                              "output": str(tmp_path / "public"),
                              "state": str(tmp_path / "state")}
    if feeds is not None:
        config["feeds"] = feeds
    if extra:
        config.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_posts(tmp_path: Path, posts: Mapping[str, str | bytes]) -> None:
    """(Re)write post files under tmp_path/_posts, creating sub-folders as needed."""
    for rel, content in posts.items():
        target = tmp_path / "_posts" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_bytes(content.encode("utf-8"))


def post(title: str | None = None, body: str = "Some text.\n", **front: Any) -> str:
    """The text of a post file: front matter (title first, then *front*) and *body*.

    Values are written verbatim after 'key: ', so tests control the exact YAML.
    """
    lines = ["---"]
    if title is not None:
        lines.append(f"title: {title}")
    lines.extend(f"{key}: {value}" for key, value in front.items())
    lines.append("---")
    return "\n".join(lines) + "\n" + body


def read_site(config_path: Path, *, now: datetime = NOW, future: bool = False) -> Published:
    config = load_config(config_path)
    store = Store.open(config.state)
    try:
        return read_posts(config, store, now=now, future=future)
    finally:
        store.close()


def build_site(config_path: Path, *, now: datetime = NOW, future: bool = False) -> BuildReport:
    return build(load_config(config_path), now=now, future=future)


def config_of(config_path: Path) -> Config:
    return load_config(config_path)


def output(config_path: Path) -> Path:
    return config_path.parent / "public"


def parse_feed(path: Path) -> Any:
    """feedparser's reading of a feed file, asserting it is well-formed."""
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, f"{path}: {parsed.get('bozo_exception')}"
    return parsed


def by_path(corpus: Published) -> dict[str, Any]:
    return {p.path: p for p in corpus.posts}


def rejected_by_name(corpus: Published) -> dict[str, Any]:
    return {Path(p.path).name: p for p in corpus.rejected}


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run the click command in-process; (exit code, stdout, stderr) kept apart.

    click >= 8.2 always captures stderr separately (mix_stderr is gone), so no option here.
    """
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def run_module(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m digest ARGS` in a real subprocess with the venv's interpreter."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "digest", *args], capture_output=True,
                          text=True, encoding="utf-8", cwd=cwd or PROJECT, env=env,
                          timeout=60, check=False)


@pytest.fixture
def site(tmp_path: Path):
    """make_site bound to this test's tmp_path."""

    def _make(posts: dict[str, str | bytes], **kwargs: Any) -> Path:
        return make_site(tmp_path, posts, **kwargs)

    return _make


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on a loopback port, recording what it receives."""
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server for the whole session (tests/pg_server.py)."""
    from pg_server import PgServer, binaries

    found = binaries()
    if found is None:
        pytest.skip("no PostgreSQL binaries in /usr/lib/postgresql/*/bin "
                    "(install the postgresql package)")
    server = PgServer(found).start()
    try:
        yield server
    finally:
        server.stop()


STORE_ENV = "DIGEST_TEST_DATABASE_URL"  # names the PostgreSQL database in the tests' configs
STORES = ("postgres", "sqlite")  # the shared state's implementations, as a config chooses them


def store_config(name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config keys choosing the shared state *name*: none for SQLite in the state folder;
    for PostgreSQL, `database_env` naming a variable set (for child processes too) to a fresh
    database on the session's server (tests/pg_server.py)."""
    if name == "sqlite":
        return {}
    request.getfixturevalue("monkeypatch").setenv(STORE_ENV,
                                                  request.getfixturevalue("pg_url"))
    return {"database_env": STORE_ENV}


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return str(pg_server.create_database())
