"""The README is executable: its YAML loads as config and its command lines run.

Everything is extracted from README.md by rule, so a new or changed line there is tested
without touching this file:

- every fenced ```yaml block is a piece of config.yaml: each must load on its own (merged
  into a minimal site), and all of them together are the production example;
- a command line is an indented code line whose program is `digest` (or `make`), the first
  cell of a table row starting with `digest `, or an inline code span starting with
  `digest ` (chains split at `&&`). Synopses expand: `[--opt X]` is run without and with its
  options, `a|b` once per choice, upper-case placeholders get a value (PLACEHOLDERS; a new
  one fails the test until it has one).

Every `digest` line runs against the complete production example (site, feeds, subscribers,
digest, smtp relaying to an in-process aiosmtpd with STARTTLS and AUTH, web) in tmp_path and
must exit 0 without a traceback; `run` and `serve` keep running, so they are started, asked
for /healthz, sent SIGTERM and must exit 0. A line that is not `digest` must be in EXEMPT
with the reason it is not run here.
"""

from __future__ import annotations

import functools
import http.server
import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner
from conftest import parse_feed, post
from smtp_server import SmtpServer

from digest.cli.commands import main
from digest.config import load_config

PROJECT = Path(__file__).resolve().parent.parent
README = (PROJECT / "README.md").read_text(encoding="utf-8")
TZ = ZoneInfo("America/New_York")
NOW = datetime.now(TZ).replace(microsecond=0)
SMTP_USER, SMTP_PASSWORD = "jobs@example.org", "readme-test-password"
SECRET = "readme-test-secret-0123456789abcdef"
SUBSCRIBERS = [{"email": "ana@example.org", "tags": ["union"]}, {"email": "all@example.org"}]
READERS = ("ana@example.org", "all@example.org")  # SUBSCRIBERS' addresses

# values for the README's placeholders; COMMAND stands for every subcommand
PLACEHOLDERS = {"T": NOW.isoformat(), "ME": "me@example.org", "EMAIL": "ana@example.org",
                "DIR": "previews", "DATETIME": NOW.isoformat(),
                # a digest in progress (made by prepare_run), and why the owner acts on it
                "SLUG": "2024-06-10", "TEXT": "'moving the mail server'",
                # one CSV of a Mailchimp audience export, as tests/test_import.py uses it
                "EXPORT": str(PROJECT / "tests" / "fixtures" / "import"
                              / "subscribed_members_export_8a1f2c3d4e.csv")}
# what a command reads from standard input (the password `digest admin-password` hashes)
STDIN = {"admin-password": "readme-test-dashboard-password\n"}
# commands that keep running until stopped: started, checked, sent SIGTERM
SERVERS = {"run", "serve"}
EXEMPT = {
    "make build": "builds the venv this test runs in and sends the example's digest; the "
                  "pkg helper's installed-wheel smoke test covers it, and every digest "
                  "command it runs is run here",
    "make test": "runs this very suite",
    "make bench": "needs the 20,000-post corpus and Hugo (see Benchmarks)",
    "make lock": "rewrites the committed lock from PyPI with uv; `make test` installs from "
                 "the lock it wrote, with its hashes checked",
    "make lock LOCK_UPGRADE='--upgrade-package jinja2'": "as make lock, one package",
    "make test-latest": "CI's second pass (.ci/run runs it after make test)",
    "python3 -m venv .venv": "creates the venv this test already runs in",
    ".venv/bin/pip install -e '.[test]'": "installs the package this test already imports",
}


# extraction -----------------------------------------------------------------------------

def yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", README, re.M | re.S)


def _is_digest(word: str) -> bool:
    return word == "digest" or word.endswith("/digest")


def _lines_outside_fences() -> Iterator[str]:
    fenced = False
    for line in README.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield line


def command_lines() -> list[str]:
    """Every command line README.md shows, as written (synopses not yet expanded)."""
    found: list[str] = []
    for line in _lines_outside_fences():
        if line.startswith("    "):
            words = line.split()
            program = next((w for w in words if "=" not in w), "")
            if program == "make" or _is_digest(program):
                found.append(line.strip())
        elif line.startswith("|"):
            first = re.split(r"(?<!\\)\|", line)[1]
            spans = [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", first)]
            if spans and spans[0].startswith("digest "):
                found += [s if s.startswith("digest ") else f"digest {s}" for s in spans]
        else:
            for span in re.findall(r"`([^`]+)`", line):
                parts = [p.strip() for p in span.split("&&")]
                if len(parts) > 1 or span.startswith(("digest ", "make ")):
                    found += [p for p in parts if p.startswith(("digest ", "make "))
                              or len(parts) > 1]
    return list(dict.fromkeys(found))


def expand(line: str) -> list[str]:
    """A synopsis → the command lines it stands for."""
    bare = re.sub(r"\s*\[[^\]]*\]", "", line)
    full = re.sub(r"\[([^\]]*)\]", r"\1", line)
    out: list[str] = []
    for text in dict.fromkeys([bare, full]):
        words = text.split()
        choices = [w.split("|") if "|" in w and not w.startswith("|") else [w] for w in words]
        for combo in itertools.product(*choices):
            out += _fill(list(combo))
    return list(dict.fromkeys(out))


def _fill(words: list[str]) -> list[str]:
    if "COMMAND" in words:
        at = words.index("COMMAND")
        return [c for name in sorted(main.commands)
                for c in _fill([*words[:at], name, *words[at + 1:]])]
    filled = []
    for word in words:
        if re.fullmatch(r"[A-Z][A-Z_]*", word) and "=" not in word:
            assert word in PLACEHOLDERS, f"README placeholder {word}: give it a value here"
            word = PLACEHOLDERS[word]
        filled.append(word)
    return [" ".join(filled)]


def digest_commands() -> list[str]:
    return list(dict.fromkeys(c for line in command_lines() if line not in EXEMPT
                              for c in expand(line)))


# the production example in tmp_path --------------------------------------------------------

def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_site(root: Path) -> None:
    """A Jekyll site at root/mysite with posts from the last few days, and subscribers."""
    site = root / "mysite"
    (site / "_posts").mkdir(parents=True, exist_ok=True)
    (site / "_config.yml").write_text(
        "title: Jobs Board\nurl: https://jobs.example.org\ntimezone: America/New_York\n",
        encoding="utf-8")
    for days, slug, tags in ((3, "union-organizer", "[union, data]"),
                             (2, "campaign-analyst", "[campaigns]")):
        day = (NOW - timedelta(days=days)).date().isoformat()
        (site / "_posts" / f"{day}-{slug}.md").write_text(
            post(slug.replace("-", " ").title(), tags=tags), encoding="utf-8")


def make_paths_exist(config: dict[str, Any], base: Path) -> None:
    """Whatever file or folder the config names, made to exist (beside what write_site made)."""
    subscribers = config.get("subscribers")
    if subscribers:
        target = base / subscribers
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(SUBSCRIBERS), encoding="utf-8")
    templates = (config.get("digest") or {}).get("templates")
    if templates:
        (base / templates).mkdir(parents=True, exist_ok=True)
    jekyll = (config.get("site") or {}).get("jekyll_config")
    if jekyll and not (base / jekyll).exists():
        write_site((base / jekyll).parent.parent)
    maildir = (config.get("bounces") or {}).get("maildir")
    if maildir:
        for sub in ("new", "cur", "tmp"):
            (base / maildir / sub).mkdir(parents=True, exist_ok=True)
    (base / str(config["posts"])).mkdir(parents=True, exist_ok=True)


def write_config(root: Path, *blocks: str, **overrides: Any) -> Path:
    """config.yaml in root/work: a minimal site, then *blocks* merged in order."""
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    write_site(root)
    config: dict[str, Any] = {"posts": "../mysite/_posts"}
    for block in blocks:
        config = deep_merge(config, yaml.safe_load(block))
    for key, value in overrides.items():
        config = deep_merge(config, {key: value})
    make_paths_exist(config, work)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def feed_server() -> Iterator[str]:
    """A real HTTP server on a loopback port serving the test feeds; its base URL."""
    folder = str(PROJECT / "tests" / "fixtures" / "feeds")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def local_sources(base: str) -> list[dict[str, Any]]:
    """The README's feed sources, each fetching a real feed from this machine instead."""
    merged: dict[str, Any] = {}
    for block in yaml_blocks():
        merged = deep_merge(merged, yaml.safe_load(block))
    return [{**s, "feed": f"{base}/ours.xml"} for s in merged.get("sources", [])]


@pytest.fixture
def production(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """All the README's YAML together, relaying to a real aiosmtpd; (config, environment)."""
    with SmtpServer(tls="starttls", auth=(SMTP_USER, SMTP_PASSWORD)) as server, \
            feed_server() as feeds:
        sources = local_sources(feeds)
        config = write_config(
            tmp_path, *yaml_blocks(),
            # only where the mail server, the web front and the feeds really are
            smtp={"host": "127.0.0.1", "port": server.port, "ca_file": str(server.ca_file)},
            web={"listen": f"127.0.0.1:{free_port()}"},
            **({"sources": sources} if sources else {}))
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        assert data["smtp"]["username"] == SMTP_USER, "the README's smtp.username changed"
        env = {data["smtp"]["password_env"]: SMTP_PASSWORD,
               data["web"].get("secret_env", "DIGEST_SECRET"): SECRET}
        yield config, env


# the tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("block", yaml_blocks(),
                         ids=[f"block{n}" for n in range(1, len(yaml_blocks()) + 1)])
def test_every_yaml_block_in_the_readme_loads_as_a_config(tmp_path: Path, block: str) -> None:
    config = load_config(write_config(tmp_path, block))
    assert config.posts.is_dir()


def test_readme_shows_only_commands_this_test_runs_or_exempts_with_a_reason() -> None:
    lines = command_lines()
    others = [line for line in lines
              if not _is_digest(next(w for w in line.split() if "=" not in w))]
    assert [line for line in others if line not in EXEMPT] == []
    commands = digest_commands()
    assert any(c.startswith("digest run") for c in commands)  # the extraction still works
    assert any("serve" in c for c in commands)


def _split(command: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert _is_digest(words[0])
    return env, words[1:]


def _subcommand(args: list[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


@pytest.mark.parametrize("command", digest_commands())
def test_every_digest_command_line_in_the_readme_runs(
        production: tuple[Path, dict[str, str]], command: str,
        monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    config, env = production
    line_env, args = _split(command)
    env = {**env, **line_env}
    cwd = config.parent
    if _subcommand(args) == "init":  # it writes a config.yaml: run it where there is none
        cwd = config.parent.parent / "fresh"
        cwd.mkdir()
    monkeypatch.chdir(cwd)
    if _subcommand(args) in ("pause", "resume", "cancel"):
        prepare_run(config, paused=_subcommand(args) == "resume")
    if _subcommand(args) == "copy-state":
        prepare_copy(config, request.getfixturevalue("pg_url"), monkeypatch)
    if _subcommand(args) in SERVERS and "--help" not in args:
        start_and_stop(args, cwd, env, config)
        return
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False,
                                input=STDIN.get(_subcommand(args) or ""))
    assert result.exit_code == 0, f"{command}: {result.stdout}{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr


def prepare_copy(config: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site that has built on SQLite, then names the ```yaml postgres block's variable,
    set to a fresh database: where `digest copy-state` is run."""
    result = CliRunner().invoke(main, ["--config", str(config), "build"])
    assert result.exit_code == 0, result.output
    (block,) = re.findall(r"^```yaml postgres\n(.*?)^```", README, re.M | re.S)
    data = deep_merge(yaml.safe_load(config.read_text(encoding="utf-8")), yaml.safe_load(block))
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv(data["database_env"], url)


def prepare_run(config: Path, *, paused: bool) -> None:
    """A digest SLUG still to send, as `digest pause`, `resume` and `cancel` act on one
    (paused by the owner, for `resume`)."""
    from digest.delivery.control import pause_run
    from digest.state.open import open_state

    state = open_state(load_config(config))
    try:
        slug = PLACEHOLDERS["SLUG"]
        end = datetime.fromisoformat(f"{slug}T09:00:00").replace(tzinfo=TZ)
        state.create_run(slug=slug, start=end - timedelta(days=7), end=end, posts=[],
                         subscribers=[(email, email) for email in READERS])
        if paused:
            pause_run(state, slug, reason="a test", by="readme", now=datetime.now(TZ))
    finally:
        state.close()


def start_and_stop(args: list[str], cwd: Path, env: dict[str, str], config: Path) -> None:
    """Start a long-running command, wait until its web front answers, SIGTERM it: exit 0."""
    listen = yaml.safe_load(config.read_text(encoding="utf-8"))["web"]["listen"]
    script = Path(sys.executable).with_name("digest")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "digest"]
    process = subprocess.Popen([*program, *args], cwd=cwd, text=True,
                               env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not healthy(listen):
            assert process.poll() is None, f"{args} exited {process.returncode}: " \
                                           f"{process.communicate()[1]}"
            assert time.monotonic() < deadline, f"{args}: /healthz never answered"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err, err


def healthy(listen: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{listen}/healthz", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def test_daemon_with_the_readmes_whole_production_example_starts_and_stops_cleanly(
        production: tuple[Path, dict[str, str]]) -> None:
    config, env = production
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert data["digest"]["grace_hours"] == 24  # as the README shows it (was a crash)
    start_and_stop(["run"], config.parent, env, config)


def test_the_readmes_hugo_example_builds_a_hugo_site(tmp_path: Path) -> None:
    """The ```yaml hugo block (kept apart: it replaces jekyll_config, so it cannot merge into
    the production example), as written, over tests/fixtures/hugo copied to ../myhugosite."""
    (block,) = re.findall(r"^```yaml hugo\n(.*?)^```", README, re.M | re.S)
    shutil.copytree(PROJECT / "tests" / "fixtures" / "hugo", tmp_path / "myhugosite")
    (tmp_path / "work").mkdir()
    config = tmp_path / "work" / "config.yaml"
    config.write_text(block, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(config), "build"])
    assert result.exit_code == 0, result.output
    site = parse_feed(tmp_path / "work" / "public" / "feed.xml")
    assert site.feed.title == "Hugo fixture"
    links = {entry.link for entry in site.entries}
    assert "https://example.org/special/place/" in links  # url: wins over the permalink
    assert "https://example.org/2021/04/02/a-fixed-slug/" in links
    assert len(site.entries) == 19
    tagged = parse_feed(tmp_path / "work" / "public" / "feed" / "by_tag" / "Linkerd.xml")
    assert [e.title for e in tagged.entries] == ["TOML with an offset"]


def test_the_readmes_postgres_example_keeps_the_shared_state_in_postgresql(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ```yaml postgres block (kept apart: it needs a PostgreSQL server), merged into a
    minimal site with its variable set to a fresh database on tests/pg_server.py's server:
    `digest build` keeps the entry ids there, not in the state folder's SQLite file."""
    import psycopg

    (block,) = re.findall(r"^```yaml postgres\n(.*?)^```", README, re.M | re.S)
    config = write_config(tmp_path, block)
    monkeypatch.setenv(yaml.safe_load(block)["database_env"], pg_url)
    result = CliRunner().invoke(main, ["--config", str(config), "build"])
    assert result.exit_code == 0, result.output
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM entry_ids").fetchone()
    assert row is not None and row[0] > 0
