"""config.yaml: every mistake named with file, line and a suggestion; the site's own
_config.yml merged under ours; paths relative to the config file; the CLI's exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SITE_URL, make_site, parse_feed, post, run_cli, run_module

from digest.config import load_config
from digest.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "_posts").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for problem in caught.value.problems:
        assert problem.path == path
    return [(p.line, p.message, p.hint) for p in caught.value.problems]


def test_misspelt_top_level_key_names_its_line_and_the_key_meant(tmp_path):
    path = _write(tmp_path, "site:\n  url: https://a.example\npostz: _posts\n")
    problems = _problems(path)
    assert (3, "unknown key 'postz'", "did you mean 'posts'?") in problems
    assert any(p[:2] == (None, "missing key 'posts'") for p in problems)
    assert len(problems) == 2


def test_misspelt_site_key_suggests_the_site_key(tmp_path):
    path = _write(tmp_path, "posts: _posts\nsite:\n  url: https://a.example\n  titel: x\n")
    assert _problems(path) == [(4, "unknown key 'site.titel'", "did you mean 'title'?")]


def test_misspelt_feeds_key_suggests_the_feeds_key(tmp_path):
    path = _write(tmp_path, "posts: _posts\nfeeds:\n  entires: 5\n")
    assert _problems(path) == [(3, "unknown key 'feeds.entires'", "did you mean 'entries'?")]


def test_unrelated_unknown_key_lists_the_allowed_keys(tmp_path):
    path = _write(tmp_path, "posts: _posts\nzzz: 1\n")
    assert _problems(path) == [
        (2, "unknown key 'zzz'",
         "allowed: admin, bounces, database_env, database_wait_seconds, digest, feeds, limits, "
         "output, posts, signup, site, smtp, sources, state, subscribers, web")]


def test_every_problem_is_reported_at_once(tmp_path):
    path = _write(tmp_path, "posts: _posts\nsite:\n  titel: x\n  urll: y\nfeeds:\n  entries: 0\n")
    lines = sorted(line or 0 for line, _, _ in _problems(path))
    assert lines == [3, 4, 6]


def test_out_of_range_value_names_its_line(tmp_path):
    path = _write(tmp_path, "posts: _posts\nfeeds:\n  entries: 0\n")
    [(line, message, _)] = _problems(path)
    assert line == 3
    assert message.startswith("'feeds.entries': Input should be greater than or equal to 1")


def test_missing_posts_folder_is_named(tmp_path):
    path = _write(tmp_path, "site:\n  title: T\nposts: nowhere\n")
    [(line, message, hint)] = _problems(path)
    assert line == 3
    assert message == f"posts folder {tmp_path / 'nowhere'} does not exist"
    assert hint == "point 'posts:' at the site's _posts folder"


def test_unknown_timezone_names_its_line(tmp_path):
    path = _write(tmp_path, "posts: _posts\nsite:\n  title: T\n  timezone: Mars/Olympus\n")
    assert _problems(path) == [(4, "unknown timezone 'Mars/Olympus'",
                                "use an IANA name such as America/New_York")]


def test_invalid_yaml_in_config_names_its_line(tmp_path):
    path = _write(tmp_path, "posts: _posts\nsite:\n  title: [unclosed\n")
    [(line, message, _)] = _problems(path)
    assert line == 4  # libyaml notices at the end of the document
    assert message.startswith("invalid YAML:")


def test_config_that_is_not_a_mapping_is_rejected(tmp_path):
    path = _write(tmp_path, "- posts\n- site\n")
    assert _problems(path) == [(1, "config must be a mapping of keys to values", "")]


def test_missing_config_file_is_reported(tmp_path):
    assert _problems(tmp_path / "absent.yaml") == [(None, "file not found", "check the path")]


def test_jekyll_config_settings_are_used_and_ours_win(tmp_path):
    site = tmp_path / "site"
    (site / "_posts").mkdir(parents=True)
    (site / "_posts" / "2019-03-05-offer.md").write_text(post("Offer"))
    (site / "_config.yml").write_text(
        "title: Jekyll Title\nurl: https://jekyll.example.com\nbaseurl: /jb\n"
        "permalink: pretty\ntimezone: Europe/Paris\nlocale: fr_FR\nplugins: [jekyll-feed]\n"
        "excerpt_separator: <!--more-->\n")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(
        "site:\n  jekyll_config: ../site/_config.yml\n  title: Our Title\n"
        "  url: https://ours.example.org\nposts: ../site\noutput: out\nstate: st\n")
    config = load_config(conf / "config.yaml")
    assert config.site.title == "Our Title"
    assert config.site.url == "https://ours.example.org"
    assert config.site.baseurl == "/jb"
    assert config.site.permalink == "pretty"
    assert config.site.timezone == "Europe/Paris"
    assert config.site.lang == "fr-FR"
    assert config.site.excerpt_separator == "<!--more-->"
    assert config.jekyll_config == site / "_config.yml"
    # posts: pointing at the site root reads its _posts folder
    assert config.posts == site / "_posts"


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(tmp_path, monkeypatch):
    site = tmp_path / "srv" / "site"
    (site / "_posts").mkdir(parents=True)
    (site / "_posts" / "2019-03-05-offer.md").write_text(post("Offer"))
    (site / "config.yaml").write_text(
        f"site:\n  url: {SITE_URL}\n  title: T\nposts: _posts\noutput: public\nstate: .state\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../srv/site/config.yaml"))
    assert config.posts == site / "_posts"
    assert config.output == site / "public"
    assert config.state == site / ".state"
    code, _, err = run_cli(["--config", "../srv/site/config.yaml", "build"])
    assert (code, err) == (0, "")
    assert [e.title for e in parse_feed(site / "public" / "feed.xml").entries] == ["Offer"]
    assert (site / ".state" / "state.sqlite3").is_file()
    assert os.listdir(elsewhere) == []


def test_defaults_when_only_posts_is_given(tmp_path):
    config = load_config(_write(tmp_path, "posts: _posts\n"))
    assert config.output == tmp_path / "public"
    assert config.state == tmp_path / ".digest"
    assert config.feed_entries == 20
    assert config.stylesheet is False  # Chromium 156 dropped XSLT: feeds.html instead
    assert (config.site.timezone, config.site.permalink, config.site.title) == (
        "UTC", "date", "Posts")


def test_cli_exits_2_with_the_config_problem_on_stderr(tmp_path):
    path = _write(tmp_path, "postz: _posts\n")
    for command in ("build", "check", "posts"):
        code, out, err = run_cli(["--config", str(path), command])
        assert code == 2
        assert out == ""
        assert f"error: {path}:1: unknown key 'postz' (did you mean 'posts'?)" in err


def test_cli_exits_2_when_the_config_file_is_missing(tmp_path):
    code, out, err = run_cli(["--config", str(tmp_path / "nope.yaml"), "check"])
    assert (code, out) == (2, "")
    assert err == f"error: {tmp_path / 'nope.yaml'}: file not found (check the path)\n"


def test_cli_exits_2_on_an_unknown_subcommand_or_option(tmp_path):
    code, _, err = run_cli(["frobnicate"])
    assert code == 2
    assert "No such command 'frobnicate'" in err
    code, _, err = run_cli(["--config", str(make_site(tmp_path, {})), "build", "--nope"])
    assert code == 2
    assert "No such option '--nope'" in err


def test_cli_exits_2_on_a_bad_now_value(tmp_path):
    code, _, err = run_cli(["--config", str(make_site(tmp_path, {})), "build", "--now", "soon"])
    assert code == 2
    assert "'soon' is not an ISO 8601 date-time" in err


@pytest.mark.parametrize(("args", "words"), [
    ([], "Jekyll-style posts"),
    (["build"], "Write the site feed and one feed per tag"),
    (["check"], "Report every problem in the posts"),
    (["posts"], "List the posts that would be published"),
])
def test_help_works_for_every_command(args, words):
    code, out, err = run_cli([*args, "--help"])
    assert code == 0
    assert err == ""
    assert words in " ".join(out.split()), out
    assert "--help" in out


def test_config_error_through_python_m_digest(tmp_path):
    path = _write(tmp_path, "posts: _posts\nsite:\n  titel: x\n")
    result = run_module(["--config", str(path), "check"])
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"error: {path}:3: unknown key 'site.titel' (did you mean 'title'?)" in result.stderr


def test_bounces_and_signup_sections_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "posts: _posts\nbounces:\n  return_path: bounces@example.org\n"
                  "  imap: {host: mail.example.org, username: b, password_env: IMAP_PW,"
                  " security: starttls}\n  webhooks: {mailgun: {signing_key_env: MG}}\n"
                  "signup: {per_hour: 10}\n")
    config = load_config(path)
    assert config.bounces is not None and config.bounces.imap is not None
    assert config.bounces.imap.port == 143 and config.bounces.return_path == "bounces@example.org"
    assert config.bounces.webhooks.mailgun_key_env == "MG" and not config.bounces.webhooks.ses
    assert config.signup is not None and config.signup.per_hour == 10
    assert config.signup.confirm_hours == 48


@pytest.mark.parametrize(("section", "line", "wrong"), [
    ("bounces:\n  return_path: Jobs <bounces@example.org>\n", 3, "bare address"),
    ("bounces:\n  return_path: bounces+x@example.org\n", 3, "bare address"),
    ("bounces:\n  maildir: mail\n  imap: {host: h, username: u, password_env: P}\n", 4,
     "both a maildir and an imap"),
    ("bounces:\n  imap: {host: h, username: u, password_env: 'a b'}\n", 3, "password_env"),
    ("signup:\n  per_hour: 0\n", 3, "per_hour"),
])
def test_bad_bounces_or_signup_settings_name_their_line(tmp_path: Path, section: str, line: int,
                                                        wrong: str) -> None:
    found = _problems(_write(tmp_path, "posts: _posts\n" + section))
    assert len(found) == 1 and found[0][0] == line and wrong in found[0][1], found
