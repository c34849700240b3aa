"""The files digest ships with it (Jinja templates, the feeds' stylesheet), read from the
installed package `digest.templates` through importlib.resources.

They are package data, so a wheel carries them and nothing here looks for a folder beside
the package; in the repository they are edited in the top-level `templates/`, which
pyproject.toml maps to `digest.templates`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import jinja2

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
