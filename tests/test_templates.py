"""The built-in templates come from the package `digest.templates`; a user's
`digest: templates:` folder wins over them file by file (the digest's own override is
tested in test_render.py, the installed wheel in test_installed.py)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import pytest
from conftest import PROJECT, run_cli
from helpers import MONDAY, SECRET, WEEK, digest_site

from digest.config import Site
from digest.delivery.session import COMPILED
from digest.edition.layout import mail_environment
from digest.util import builtin
from digest.web.pages import Pages

SITE = Site(url="https://jobs.example.org", title="Jobs Board")


def test_every_file_of_templates_folder_is_a_resource_of_the_package() -> None:
    source = {p.relative_to(PROJECT / "templates").as_posix()
              for p in (PROJECT / "templates").rglob("*.*")
              if p.is_file() and "__pycache__" not in p.parts}
    for name in source:
        resource = files(builtin.PACKAGE).joinpath(*name.split("/"))
        assert resource.read_bytes() == (PROJECT / "templates" / name).read_bytes(), name
    assert builtin.read_bytes("feed.xsl").startswith(b"<?xml")


def test_a_web_page_in_the_override_folder_wins_and_the_others_stay_built_in(
        tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "base.html.j2").write_text(
        "<!doctype html><title>{% block title %}{% endblock %}</title>"
        "<main class=mine>{% block body %}{% endblock %}</main>", encoding="utf-8")
    pages = Pages(SITE, tmp_path)
    # error.html.j2 is the built-in one; the base it extends is the user's
    page = pages.html("error", {"title": "Gone", "text": "No such page."})
    assert "<main class=mine>" in page and "No such page." in page
    built_in = Pages(SITE, None).html("error", {"title": "Gone", "text": "No such page."})
    assert "<main class=mine>" not in built_in and "No such page." in built_in


def test_no_module_looks_for_files_outside_the_package() -> None:
    # a wheel installs digest/ alone: a path climbing out of it finds nothing
    climbing = re.compile(r"parent\.parent|parents\[\d\]|__file__.*\.\.")
    offenders = [f"{p.relative_to(PROJECT)}:{n}"
                 for p in (PROJECT / "digest").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if climbing.search(line)]
    assert offenders == []


class _Counting(jinja2.Environment):
    """An environment that counts its compiles (jinja2's own, otherwise unchanged)."""

    compiles = 0

    def compile(self, *args: Any, **kwargs: Any) -> Any:
        type(self).compiles += 1
        return super().compile(*args, **kwargs)


def _kept_env(templates: Path | None, kept: Path) -> jinja2.Environment:
    env = mail_environment(templates, kept)
    env.__class__ = _Counting
    return env


def _render(env: jinja2.Environment) -> str:
    return env.get_template("page.txt.j2").render(name="Ana")


def test_a_compiled_template_is_kept_and_loaded_by_the_next_process(tmp_path: Path) -> None:
    """A sender compiles the email templates once per machine (27 ms of each start);
    the kept code renders what compiling gives, and an edited template is compiled anew."""
    mine, kept = tmp_path / "mine", tmp_path / "state" / COMPILED
    mine.mkdir()
    (mine / "page.txt.j2").write_text("Hello {{ name }}\n", encoding="utf-8")
    _Counting.compiles = 0
    assert _render(_kept_env(mine, kept)) == "Hello Ana\n"
    assert _Counting.compiles == 1
    files_kept = list(kept.iterdir())
    assert len(files_kept) == 1 and files_kept[0].stat().st_mode & 0o777 == 0o600
    assert kept.stat().st_mode & 0o777 == 0o700
    assert _render(_kept_env(mine, kept)) == "Hello Ana\n"
    assert _Counting.compiles == 1  # loaded, not compiled
    (mine / "page.txt.j2").write_text("Goodbye {{ name }}\n", encoding="utf-8")
    assert _render(_kept_env(mine, kept)) == "Goodbye Ana\n"
    assert _Counting.compiles == 2


def test_a_damaged_compiled_template_is_compiled_again(tmp_path: Path) -> None:
    """A flipped bit in kept code could change what an email says and still load (marshal
    checks nothing): the file's digest turns it away, and the good code is written back."""
    mine, kept = tmp_path / "mine", tmp_path / "state" / COMPILED
    mine.mkdir()
    (mine / "page.txt.j2").write_text("Hello {{ name }}, your digest\n", encoding="utf-8")
    _render(_kept_env(mine, kept))
    (path,) = kept.iterdir()
    good = path.read_bytes()
    at = good.index(b"your digest")
    for damaged in (good[:at] + b"YOUR" + good[at + 4:], good[:len(good) // 2], b""):
        path.write_bytes(damaged)
        _Counting.compiles = 0
        assert _render(_kept_env(mine, kept)) == "Hello Ana, your digest\n"
        assert _Counting.compiles == 1
        assert path.read_bytes() == good


def test_a_folder_that_cannot_hold_compiled_templates_costs_only_the_compile(
        tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "page.txt.j2").write_text("Hello {{ name }}\n", encoding="utf-8")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    assert _render(_kept_env(mine, blocked / COMPILED)) == "Hello Ana\n"
    assert _render(_kept_env(mine, blocked)) == "Hello Ana\n"
    assert blocked.read_text(encoding="utf-8") == "not a folder"


def test_code_compiled_with_other_options_is_not_loaded(tmp_path: Path) -> None:
    """Jinja's key is the template's name and source; the environment's options (here a
    later digest's) shape the code as well, so they key the file too."""
    mine, kept = tmp_path / "mine", tmp_path / "state" / COMPILED
    mine.mkdir()
    (mine / "page.txt.j2").write_text("Hello {{ name }}\n", encoding="utf-8")
    first = _kept_env(mine, kept)
    _render(first)
    other = _kept_env(mine, kept)
    assert isinstance(other.bytecode_cache, builtin.KeptTemplates)
    other.bytecode_cache = builtin.KeptTemplates(kept, b"other options")
    _Counting.compiles = 0
    assert _render(other) == "Hello Ana\n"
    assert _Counting.compiles == 1 and len(list(kept.iterdir())) == 2


def test_a_send_keeps_the_digest_templates_compiled_for_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    cfg = digest_site(tmp_path)
    assert run_cli(["--config", str(cfg), "send", "--as-of", MONDAY.isoformat()])[0] == 0
    kept = tmp_path / "state" / COMPILED
    names = sorted(p.name for p in kept.iterdir())
    assert len(names) == 3 and all(n.endswith(".cache") for n in names)  # html, text, subject
    compiles: list[str] = []
    real = jinja2.Environment.compile

    def counted(self: jinja2.Environment, source: Any, name: str | None = None,
                *args: Any, **kwargs: Any) -> Any:
        compiles.append(str(name))
        return real(self, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counted)
    code, _, err = run_cli(["--config", str(cfg), "send", "--as-of",
                            (MONDAY + WEEK).isoformat()])
    assert code == 0, err
    assert [n for n in compiles if n.startswith("digest") or n.startswith("subject")] == []
    assert sorted(p.name for p in kept.iterdir()) == names
