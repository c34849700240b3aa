"""The files digest ships with it (Jinja templates, the feeds' stylesheet), read from the
installed package `digest.templates` through importlib.resources.

They are package data, so a wheel carries them and nothing here looks for a folder beside
the package; in the repository they are edited in the top-level `templates/`, which
pyproject.toml maps to `digest.templates`. A template that fails is told as a TemplateError
at its file and line, by whichever stage renders it (the emails, the web pages, feeds.html).
"""

from __future__ import annotations

import traceback
from importlib.resources import files
from pathlib import Path

import jinja2

from ..errors import TemplateError

PACKAGE = "digest.templates"


def read_bytes(name: str) -> bytes:
    """A built-in file by its '/'-separated name, e.g. `feed.xsl`."""
    return files(PACKAGE).joinpath(*name.split("/")).read_bytes()


def loader(override: Path | None) -> jinja2.BaseLoader:
    """The built-in templates, behind the user's `digest: templates:` folder if there is
    one: a file of the same name there wins, and the built-in ones fill in the rest."""
    # PackageLoader finds the package through importlib, so it reads the files wherever
    # they are installed (a wheel, a zip, the editable install's mapped folder).
    builtin = jinja2.PackageLoader(PACKAGE, "")
    if override is None:
        return builtin
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(override)), builtin])


def failed(exc: Exception, template: jinja2.Template, what: str = "template error"
           ) -> TemplateError:
    """A template failure as a TemplateError naming the template file and, if known, the
    line."""
    path = Path(template.filename or template.name or "?")
    line = getattr(exc, "lineno", None)
    if line is None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = frames[-1].lineno if frames else None
    return TemplateError(path, line, f"{what}: {exc}")


def compiled(env: jinja2.Environment, name: str) -> jinja2.Template:
    """Template *name* of *env*, compiled; a syntax error (Jinja's) is a TemplateError naming
    the file and line."""
    try:
        return env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(Path(exc.filename or name), exc.lineno,
                            f"template syntax error: {exc.message}") from None
