"""The last good config load kept in the state folder: used only while both config files are
byte for byte the same, so an edit (even one keeping size and mtime) is seen at once, an
error is reported exactly as without it, and losing the state folder loses nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_site, post, run_cli

from digest.config import CACHE_NAME, load_config
from digest.errors import ConfigError

JEKYLL = "title: Jekyll Title\nurl: https://jekyll.example.com\ntimezone: Europe/Paris\n"
CONFIG = ("site:\n  jekyll_config: site/_config.yml\n  title: Our Title\n"
          "posts: site\noutput: out\nstate: st\n")


def _site(tmp_path: Path) -> Path:
    """A config naming a Jekyll _config.yml, loaded once with its state folder present."""
    (tmp_path / "site" / "_posts").mkdir(parents=True)
    (tmp_path / "site" / "_posts" / "2019-03-05-offer.md").write_text(post("Offer"))
    (tmp_path / "site" / "_config.yml").write_text(JEKYLL)
    (tmp_path / "st").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    load_config(path)
    assert (tmp_path / "st" / CACHE_NAME).is_file()
    return path


def _edit_in_place(path: Path, old: str, new: str) -> None:
    """Change the text keeping the size and the mtime: what a (size, mtime) key would miss."""
    assert len(old) == len(new)
    before = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size,
                                                              before.st_mtime_ns)


def _loads_pydantic(path: Path) -> bool:
    """Whether loading *path* in a fresh interpreter imports pydantic (a cache miss)."""
    code = ("import sys; from pathlib import Path; from digest.config import load_config; "
            f"load_config(Path({str(path)!r})); print('pydantic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    return {"True\n": True, "False\n": False}[result.stdout]


def test_an_unchanged_config_is_loaded_without_validating_it_again(tmp_path):
    path = _site(tmp_path)
    assert _loads_pydantic(path) is False
    assert load_config(path) == load_config(path)
    path.write_text(CONFIG.replace("Our Title", "New Title"))
    assert _loads_pydantic(path) is True  # the edit is validated, and kept from then on
    assert _loads_pydantic(path) is False


def test_an_edit_keeping_size_and_mtime_is_used(tmp_path):
    path = _site(tmp_path)
    _edit_in_place(path, "Our Title", "Our Tithe")
    assert load_config(path).site.title == "Our Tithe"


def test_an_edit_of_the_jekyll_config_is_used(tmp_path):
    path = _site(tmp_path)
    _edit_in_place(tmp_path / "site" / "_config.yml", "Europe/Paris", "Europe/Malta")
    assert load_config(path).site.timezone == "Europe/Malta"


def test_a_broken_edit_is_reported_with_file_and_line_and_never_kept(tmp_path):
    path = _site(tmp_path)
    _edit_in_place(path, "output: out", "outptu: out")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [(p.path, p.line, p.message, p.hint) for p in caught.value.problems] == [
        (path, 5, "unknown key 'outptu'", "did you mean 'output'?")]
    code, out, err = run_cli(["--config", str(path), "build"])
    assert (code, out) == (2, "")
    assert err == f"error: {path}:5: unknown key 'outptu' (did you mean 'output'?)\n"
    _edit_in_place(path, "outptu: out", "output: out")  # back as it was: good again
    assert load_config(path).output == tmp_path / "out"


def test_a_broken_jekyll_config_is_reported_after_a_good_load(tmp_path):
    path = _site(tmp_path)
    (tmp_path / "site" / "_config.yml").write_text("title: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].path == tmp_path / "site" / "_config.yml"
    assert caught.value.problems[0].message.startswith("invalid YAML")


def test_a_posts_folder_removed_since_is_reported(tmp_path):
    path = _site(tmp_path)
    shutil.rmtree(tmp_path / "site" / "_posts")  # posts: site now reads the root itself
    assert load_config(path).posts == tmp_path / "site"
    other = make_site(tmp_path / "other", {"2024-01-02-a.md": post("A")})
    (tmp_path / "other" / "state").mkdir()
    load_config(other)
    assert (tmp_path / "other" / "state" / CACHE_NAME).is_file()
    shutil.rmtree(tmp_path / "other" / "_posts")
    with pytest.raises(ConfigError) as caught:
        load_config(other)
    assert caught.value.problems[0].message == (
        f"posts folder {tmp_path / 'other' / '_posts'} does not exist")


def test_a_deleted_or_damaged_state_folder_loses_nothing(tmp_path):
    path = _site(tmp_path)
    first = load_config(path)
    (tmp_path / "st" / CACHE_NAME).write_bytes(b"not a pickle")
    assert load_config(path) == first
    shutil.rmtree(tmp_path / "st")
    assert load_config(path) == first
    assert not (tmp_path / "st").exists()  # loading a config creates no folder


def test_a_build_after_deleting_the_state_folder_still_works(tmp_path):
    path = make_site(tmp_path, {"2024-01-02-a.md": post("A", tags="x")})
    for _ in range(3):  # the second load finds the state folder the first build made
        assert run_cli(["--config", str(path), "build"])[0] == 0
    assert (tmp_path / "state" / CACHE_NAME).is_file()
    shutil.rmtree(tmp_path / "state")
    code, _, err = run_cli(["--config", str(path), "build"])
    assert (code, err) == (0, "")
    assert (tmp_path / "public" / "feed" / "by_tag" / "x.xml").is_file()
