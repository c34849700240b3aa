"""The built-in templates come from the package `digest.templates`; a user's
`digest: templates:` folder wins over them file by file (the digest's own override is
tested in test_render.py, the installed wheel in test_installed.py)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from conftest import PROJECT

from digest.config import Site
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
