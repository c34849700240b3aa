"""`digest init`: a config that loads and passes `digest check`, example subscribers that
follow the site's own tags, never a file overwritten, and the next commands printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT, post, run_cli

from digest.config import load_config

EXAMPLE = PROJECT / "examples" / "site"


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_SECRET", raising=False)  # init writes no web: section


def init(config: Path, site: Path) -> tuple[int, str, str]:
    return run_cli(["--config", str(config), "init", str(site)])


def jekyll_site(root: Path, config_yml: str) -> Path:
    (root / "_posts").mkdir(parents=True)
    (root / "_config.yml").write_text(config_yml, encoding="utf-8")
    for name, tags in (("2024-05-01-a.md", "[python, data]"), ("2024-05-02-b.md", "[data]"),
                       ("2024-05-03-c.md", "[rust]")):
        (root / "_posts" / name).write_text(post(name[11:12].upper(), tags=tags),
                                            encoding="utf-8")
    return root


def test_init_on_the_example_site_writes_a_config_that_passes_check(tmp_path: Path) -> None:
    config = tmp_path / "digest" / "config.yaml"
    code, out, err = init(config, EXAMPLE)
    assert code == 0, err
    assert f"wrote {config}\n" in out
    loaded = load_config(config)
    assert loaded.posts == EXAMPLE / "_posts"
    assert loaded.jekyll_config == EXAMPLE / "_config.yml"
    assert loaded.digest.sender == "Example Jobs Board <jobs@example.org>"  # author.email
    assert loaded.state == tmp_path / "digest" / ".digest"
    code, out, err = run_cli(["--config", str(config), "check"])
    assert (code, out) == (0, ""), err
    assert "10 posts OK" in err and "2 subscribers OK; 0 skipped, 0 warnings" in err


def test_init_on_a_site_in_tmp_path_follows_its_tags_and_passes_check(tmp_path: Path) -> None:
    site = jekyll_site(tmp_path / "blog", 'title: "My Blog"\nurl: https://blog.example.net\n'
                                          "timezone: Europe/Paris\n")
    config = tmp_path / "config.yaml"
    code, out, err = init(config, site)
    assert code == 0, err
    assert "3 posts, 3 tags and categories: data, python, rust" in out
    assert load_config(config).digest.sender == "My Blog <digest@blog.example.net>"
    written = (tmp_path / "subscribers.yaml").read_text(encoding="utf-8")
    assert "#   data (2), python (1), rust (1)" in written
    assert yaml.safe_load(written)[1] == {"email": "someone@example.org",
                                          "tags": ["data", "python"]}
    assert "posts: \"blog\"" in config.read_text(encoding="utf-8")  # relative: they move together
    code, out, err = run_cli(["--config", str(config), "check"])
    assert (code, out) == (0, ""), err
    assert "next digest" in err


def test_init_prints_the_next_three_commands(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.yaml"
    code, out, _ = init(config, EXAMPLE)
    assert code == 0
    lines = out.splitlines()
    assert lines[lines.index("next:") + 1:] == [
        f"  digest check --config {config}   # everything the commands need",
        f"  digest build --config {config}   # the feeds",
        f"  digest preview --config {config}   # the first digest, as files; nothing is sent"]


@pytest.mark.parametrize("existing", ["config.yaml", "subscribers.yaml"])
def test_init_refuses_to_overwrite_and_names_the_file(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("mine\n", encoding="utf-8")
    code, out, err = init(tmp_path / "config.yaml", EXAMPLE)
    assert (code, out) == (2, "")
    assert f"error: {tmp_path / existing} already exists: not overwriting it" in err
    assert (tmp_path / existing).read_text(encoding="utf-8") == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]  # nothing else written


def test_init_refuses_a_folder_without_posts(tmp_path: Path) -> None:
    code, _, err = init(tmp_path / "config.yaml", tmp_path)
    assert code == 2
    assert f"{tmp_path} has no _posts folder and no Hugo config" in err
    assert list(tmp_path.iterdir()) == []


def test_init_inside_the_site_warns_that_jekyll_would_publish_the_files(
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site)
    code, _, err = init(site / "config.yaml", site)
    assert code == 0
    assert "add config.yaml and subscribers.yaml to `exclude:` in _config.yml" in err


def test_init_with_a_broken_config_yml_says_where_and_writes_nothing(tmp_path: Path) -> None:
    site = jekyll_site(tmp_path / "blog", "title: [unclosed\n")
    code, _, err = init(tmp_path / "config.yaml", site)
    assert code == 2
    assert str(site / "_config.yml") in err and "Traceback" not in err
    assert not (tmp_path / "config.yaml").exists()


HUGO_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "hugo"


def test_init_on_a_hugo_site_reads_its_config_and_its_posts_section(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(HUGO_FIXTURE, site)
    (site / "content" / "about").mkdir()  # a section with fewer pages: not the posts
    (site / "content" / "about" / "me.md").write_text("---\ntitle: Me\n---\n",
                                                      encoding="utf-8")
    (site / "hugo.toml").write_text(
        'baseURL = "https://hugo.example.net/"\ntitle = "Hugo Blog"\n'
        '[params]\nemail = "editor@hugo.example.net"\n', encoding="utf-8")
    config = site / "config.yaml"  # in the site root: Hugo does not publish it
    code, out, err = init(config, site)
    assert code == 0, err
    assert "posts, " in out and "exclude" not in err and "publishes" not in err
    loaded = load_config(config)
    assert loaded.hugo_config == site / "hugo.toml"
    assert loaded.posts == site / "content" / "blog"
    assert loaded.digest.sender == "Hugo Blog <editor@hugo.example.net>"
    code, out, err = run_cli(["--config", str(config), "build"])
    assert code == 0, err
    (static := site / "static").mkdir()
    code, _, err = init(static / "config.yaml", site)
    assert code == 0 and "inside a folder Hugo publishes" in err


def test_init_refuses_a_hugo_site_without_sections(tmp_path: Path) -> None:
    (tmp_path / "site" / "content").mkdir(parents=True)
    (tmp_path / "site" / "hugo.toml").write_text('title = "x"\n', encoding="utf-8")
    code, _, err = init(tmp_path / "config.yaml", tmp_path / "site")
    assert code == 2 and "has no section folder" in err
    assert not (tmp_path / "config.yaml").exists()
