"""The files digest ships with it (Jinja templates, the feeds' stylesheet), read from the
installed package `digest.templates` through importlib.resources.

They are package data, so a wheel carries them and nothing here looks for a folder beside
the package; in the repository they are edited in the top-level `templates/`, which
pyproject.toml maps to `digest.templates`. A template that fails is told as a TemplateError
at its file and line, by whichever stage renders it (the emails, the web pages, feeds.html).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import traceback
from importlib.resources import files
from pathlib import Path

import jinja2

from ..errors import TemplateError

log = logging.getLogger(__name__)

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


class KeptTemplates(jinja2.BytecodeCache):
    """Compiled templates kept in a folder of the state, so that a process compiles each
    template once per machine, not once per start: compiling the digest's three templates
    was 27 ms of every sender's start, loading them 1 ms.

    Jinja keys each by the template's name and file and checks its source's checksum and
    Jinja's and Python's bytecode versions; *salt* adds what else shapes the code (the
    environment's options). Each file carries a BLAKE2 digest of its bytes, so a damaged
    or torn one is compiled afresh, never loaded; one that cannot be read or written only
    costs the compile.
    """

    def __init__(self, folder: Path, salt: bytes) -> None:
        self.folder = folder
        self._salt = hashlib.sha256(salt + jinja2.__version__.encode()).hexdigest()[:16]

    def _path(self, bucket: jinja2.bccache.Bucket) -> Path:
        return self.folder / f"{bucket.key}.{self._salt}.cache"

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            data = self._path(bucket).read_bytes()
        except OSError:
            return
        kept, body = data[:32], data[32:]
        if hashlib.blake2b(body, digest_size=32).digest() == kept:
            bucket.bytecode_from_string(body)  # Jinja checks its magic and the checksum

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        body = bucket.bytecode_to_string()
        tmp = None
        try:  # beside it, then renamed over: no reader sees half a file (nor is it synced:
            # a torn one fails its digest and is compiled again)
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{os.getpid()}.", suffix=".tmp",
                                       dir=self.folder)
            with os.fdopen(fd, "wb") as file:
                file.write(hashlib.blake2b(body, digest_size=32).digest() + body)
            os.replace(tmp, self._path(bucket))
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            log.debug("%s: compiled template not kept (%s)", self.folder, exc)
