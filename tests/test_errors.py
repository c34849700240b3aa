"""One error tree: every error digest raises is defined in digest/errors.py and drawn in its
docstring, and library errors reach the command line translated (file, line, address)."""

from __future__ import annotations

import errno
import importlib
import pkgutil
import re
import socket
from pathlib import Path

import pytest
from conftest import config_of, make_site, post, run_cli

import digest
from digest import errors
from digest.errors import DigestError, ServeError, TemplateError
from digest.web.pages import Pages
from digest.web.server import bind


def _every_digest_error() -> set[type[DigestError]]:
    """DigestError and all its subclasses, after importing every module of the package (so a
    class defined anywhere in it is found)."""
    for module in pkgutil.walk_packages(digest.__path__, prefix="digest."):
        if not module.name.endswith(".__main__"):  # importing it runs the command line
            importlib.import_module(module.name)
    found: set[type[DigestError]] = set()
    todo: list[type[DigestError]] = [DigestError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("digest") and cls not in found:
            found.add(cls)
            todo.extend(cls.__subclasses__())
    return found


def _drawn_tree() -> dict[str, str | None]:
    """The tree in errors.py's docstring: each class name → its parent's name, read from the
    drawing's indentation."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        found = re.match(r"^\s*(?:[│ ]*[├└]── )?([A-Z][A-Za-z]+)(?:\s{2,}|$)", line)
        if not found or not ("──" in line or line.strip() == "DigestError"):
            continue
        depth = found.start(1)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[found[1]] = stack[-1][1] if stack else None
        stack.append((depth, found[1]))
    return parents


def test_every_digest_error_is_defined_in_errors_py() -> None:
    elsewhere = {f"{c.__module__}.{c.__qualname__}" for c in _every_digest_error()
                 if c.__module__ != "digest.errors"}
    assert elsewhere == set()


def test_the_docstring_draws_every_error_under_its_real_parent() -> None:
    drawn = _drawn_tree()
    real = {c.__name__: next((b.__name__ for b in c.__bases__ if issubclass(b, DigestError)),
                             None)
            for c in _every_digest_error()}
    assert drawn == real


def test_every_error_says_when_it_is_raised() -> None:
    for cls in _every_digest_error():
        assert (cls.__doc__ and cls.__doc__ != DigestError.__doc__) or cls is DigestError, cls


# translations: what a library raises reaches the user as one line naming where ---------

def test_serve_on_an_address_in_use_exits_2_with_one_line_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "errors-secret-0123456789abcdef")
    site = make_site(tmp_path, {}, extra={"web": {"base_url": "https://jobs.example.org/d",
                                                  "secret_env": "DIGEST_SECRET"}})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        code, out, err = run_cli(["--config", str(site), "serve", "--listen", address])
    assert (code, out) == (2, "")
    assert err.startswith("error: ")
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: cannot listen on {address}: Address already in use"]


def test_the_web_front_that_cannot_bind_raises_a_digest_error_that_is_an_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ServeError) as caught:
            bind(address)
    assert caught.value.address == address
    assert caught.value.errno == errno.EADDRINUSE
    assert isinstance(caught.value, OSError)


def _digest_site(tmp_path: Path, templates: str) -> Path:
    (tmp_path / "subscribers.yaml").write_text("- email: ana@example.org\n", encoding="utf-8")
    return make_site(tmp_path, {"2024-05-28-one.md": post("One", tags="[union]")},
                     extra={"subscribers": "subscribers.yaml",
                            "digest": {"from": "Jobs <jobs@example.org>",
                                       "templates": templates}})


def test_preview_with_a_template_syntax_error_exits_2_naming_its_file_and_line(
        tmp_path: Path) -> None:
    folder = tmp_path / "my-templates"
    folder.mkdir()
    (folder / "digest.html.j2").write_text("<p>\n\n{% if posts %}\n", encoding="utf-8")
    config = _digest_site(tmp_path, "my-templates")
    code, out, err = run_cli(["--config", str(config), "preview", "--as-of",
                              "2024-06-01T12:00"])
    assert code == 2
    errors = [line for line in (out + err).splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {folder / 'digest.html.j2'}:3: template syntax error")


def test_a_web_page_that_fails_to_render_names_its_template_file_and_line(
        tmp_path: Path) -> None:
    folder = tmp_path / "my-templates" / "web"
    folder.mkdir(parents=True)
    page = folder / "unsubscribe.html.j2"
    page.write_text("<p>\n{{ nobody.knows }}\n", encoding="utf-8")
    pages = Pages(config_of(make_site(tmp_path, {})).site, tmp_path / "my-templates")
    with pytest.raises(TemplateError) as caught:
        pages.html("unsubscribe", {})
    assert (caught.value.path, caught.value.line) == (page, 2)
    assert "nobody" in str(caught.value)


def test_a_web_page_that_does_not_compile_names_its_template_file_and_line(
        tmp_path: Path) -> None:
    folder = tmp_path / "my-templates" / "web"
    folder.mkdir(parents=True)
    (folder / "unsubscribe.html.j2").write_text("<p>\n{% for x in y %}\n", encoding="utf-8")
    pages = Pages(config_of(make_site(tmp_path, {})).site, tmp_path / "my-templates")
    with pytest.raises(TemplateError) as caught:
        pages.template("unsubscribe")
    assert caught.value.path == folder / "unsubscribe.html.j2"
    assert caught.value.line is not None
