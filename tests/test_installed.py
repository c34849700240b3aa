"""digest as a user gets it: the wheel built from this tree, installed into a fresh venv
outside it, run on a copy of the example site from a folder outside it.

The checkout's own install (editable) would find files beside the package that a wheel
leaves behind; here the source tree is not on sys.path and not the working directory, so
a template missing from the wheel, or a path that reaches out of the package, fails.

The venv gets the same dependency versions as the one running the tests (the lock's in
`make test`, the newest in CI's second pass), resolved by pip from the wheel's metadata.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT, SITE_TZ, post
from daemon_process import SECRET, DaemonProcess

# as in the Makefile (EXAMPLE_AS_OF): the Monday after the example's posts
EXAMPLE_AS_OF = datetime(2024, 1, 22, 9, 0, tzinfo=SITE_TZ)
# what the source copy leaves out: caches anywhere, and local state and build output outside
# the package (whose digest/state/ is the state stage's code, not a state folder)
CACHES = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "*.egg-info", ".mypy_cache",
                                ".ruff_cache", ".pytest_cache")
OUTPUT = shutil.ignore_patterns("build", "dist", "public", "state", ".digest", "out")
PACKAGE = PROJECT / "digest"


def _not_source(folder: str, names: list[str]) -> set[str]:
    inside = Path(folder) == PACKAGE or PACKAGE in Path(folder).parents
    return CACHES(folder, names) | (set() if inside else OUTPUT(folder, names))


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def digest(self) -> str:
        return str(self.venv / "bin" / "digest")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> str:
    """Run a command that must succeed; its stdout and stderr, which must hold no traceback."""
    done = subprocess.run(argv, cwd=cwd, env=_clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{out}"
    assert "Traceback" not in out, f"{argv} printed a traceback:\n{out}"
    return out


def _clean_env() -> dict[str, str]:
    """This environment without anything that would put the checkout or its venv in reach."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
           and not k.startswith("DIGEST_")}
    env.update(DIGEST_SECRET=SECRET, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1", PYTHONIOENCODING="utf-8")
    return env


def _outside_source(path: Path) -> Path:
    assert not path.resolve().is_relative_to(PROJECT), f"{path} is inside the source tree"
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel, built by pip from a copy of the source, installed into a fresh venv."""
    root = _outside_source(tmp_path_factory.mktemp("installed"))
    source = root / "source"  # a copy, so the build writes nothing into the checkout
    shutil.copytree(PROJECT, source, ignore=_not_source)
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    _run([*pip, "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(source)], cwd=root)
    [wheel] = (root / "dist").glob("digest-*.whl")
    pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                   if d.metadata["Name"] and d.metadata["Name"].lower() != "digest"})
    (root / "constraints.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    _run([*pip, "install", "-q", "-c", str(root / "constraints.txt"), str(wheel)], cwd=root)
    return Installed(wheel, venv)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example site and its config, outside the source tree; the config's
    path. The web front listens on a free port (other tests run beside this one)."""
    work = _outside_source(tmp_path / "work")
    shutil.copytree(PROJECT / "examples", work / "examples", ignore=_not_source)
    config = yaml.safe_load((PROJECT / "config.yaml").read_text(encoding="utf-8"))
    config["web"]["listen"] = "127.0.0.1:0"
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                      encoding="utf-8")
    return work / "config.yaml"


def outbox(config: Path) -> list[email.message.Message]:
    folder = config.parent / "state" / "outbox" / "new"
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.iterdir())]


def test_the_wheel_carries_every_template_of_the_source_tree(installed: Installed) -> None:
    templates = PROJECT / "templates"
    wanted = {"digest/templates/" + p.relative_to(templates).as_posix()
              for p in templates.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert {"digest/templates/feed.xsl", "digest/templates/web/base.html.j2"} <= wanted
    with zipfile.ZipFile(installed.wheel) as wheel:
        assert wanted - set(wheel.namelist()) == set()


def test_the_wheel_declares_its_license_as_an_spdx_expression(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        fields = email.message_from_bytes(wheel.read(name))
    assert fields["License-Expression"] == "MIT"
    assert fields["License"] is None  # the deprecated free-text field is gone


def test_the_installed_package_is_imported_from_the_venv_not_the_checkout(
        installed: Installed, example: Path) -> None:
    out = _run([installed.python, "-c",
                "import json, sys, digest, digest.templates;"
                "print(json.dumps([digest.__file__, digest.templates.__file__, sys.path]))"],
               cwd=example.parent)
    package, templates, path = json.loads(out)
    site_packages = installed.venv / "lib"
    assert Path(package).is_relative_to(site_packages)
    assert Path(templates).is_relative_to(site_packages)
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(PROJECT)]


def test_installed_digest_builds_previews_and_sends_the_example(installed: Installed,
                                                               example: Path) -> None:
    work, base = example.parent, [installed.digest, "--config", str(example)]
    _run([*base, "build"], cwd=work)
    public = work / "public"
    assert b"<h1>Follow Example Jobs Board</h1>" in (public / "feeds.html").read_bytes()
    assert b"feed.xsl" not in (public / "feed.xml").read_bytes()  # off by default
    as_of = EXAMPLE_AS_OF.isoformat()
    _run([*base, "preview", "--as-of", as_of, "--out", str(work / "previews")], cwd=work)
    pages = list((work / "previews").glob("*.html"))
    assert pages and all("<html" in p.read_text(encoding="utf-8") for p in pages)
    _run([*base, "send", "--as-of", as_of], cwd=work)
    sent = outbox(example)
    assert sent and all(m["List-Unsubscribe"] for m in sent)


def test_installed_daemon_publishes_a_new_post_and_sends_on_schedule(
        installed: Installed, example: Path) -> None:
    work = example.parent
    with DaemonProcess(example, fake_now=EXAMPLE_AS_OF - timedelta(seconds=4),
                       program=[installed.digest], cwd=work, env=_clean_env()) as daemon:
        daemon.wait_for("daemon.started", timeout=30)
        new = work / "examples" / "site" / "_posts" / "2024-01-20-installed-check.md"
        new.write_text(post("Installed Check Analyst", tags="[union]"), encoding="utf-8")
        daemon.wait_for("feeds.rebuilt", where=lambda e: "installed-check" in e["reason"])
        assert "Installed Check Analyst" in (work / "public" / "feed.xml").read_text("utf-8")
        finished = daemon.wait_for("digest.finished", timeout=30)
        assert daemon.stop() == 0
        assert daemon.process.stdout is not None
        out = daemon.log() + daemon.process.stdout.read()
    assert "Traceback" not in out, out
    assert finished["posts"] > 0
    assert outbox(example)


def test_installed_web_front_answers_healthz(installed: Installed, example: Path) -> None:
    import httpx

    _run([installed.digest, "--config", str(example), "build"], cwd=example.parent)
    with DaemonProcess(example, command="serve", log_format="text", program=[installed.digest],
                       cwd=example.parent, env=_clean_env()) as server:
        listening = server.wait_for(None, where=lambda e: "listening on" in e["message"],
                                    timeout=30)
        url = listening["message"].rsplit(" ", 1)[-1]
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert "</html>" in httpx.get(f"{url}/archive/").text  # a page from the templates
        assert httpx.get(f"{url}/feed.xml").headers["content-type"].startswith(
            "application/atom+xml")
        assert server.stop() == 0
        assert server.process.stdout is not None
        out = server.log() + server.process.stdout.read()
    assert "Traceback" not in out, out


def test_the_wheel_lists_every_package_of_the_tree() -> None:
    """pyproject.toml lists the packages (templates live outside digest/): a new stage left
    out of it imports from the checkout and is missing from every install."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts)
             for p in (root / "digest").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
