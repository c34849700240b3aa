"""Our reading of posts equals real Jekyll's (Debian's jekyll 4.3), post by post.

Builds a site of tricky-but-valid posts with the real `jekyll` and compares url, date
(the instant), title, tags and categories with `digest posts --json`. Skipped where Jekyll
is not installed (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli.commands import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from jekyll_compare import compare

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "site"

TRICKY = {
    "2019-03-01-naive-yaml-time.md": "---\ndate: 2019-03-01 10:00:00\n---\nUTC per Psych.\n",
    "2019-03-02-quoted-time.md": "---\ndate: \"2019-03-02 10:00:00\"\n---\nsite-local\n",
    "2019-03-03-no-seconds.md": "---\ndate: 2019-03-03 10:00\n---\nsite-local\n",
    "2019-03-04-zoned.md": "---\ndate: 2019-03-04T23:30:00Z\n---\nday changes\n",
    "2019-03-05-string-tags.md": "---\ntags: a b  c\ncategories: X y\n---\nx\n",
    "2019-03-06-singular.md": "---\ntag: foo bar\ncategory: News\ncategories: [z]\n---\nx\n",
    "2019-03-07-numbers.md": "---\ntitle: 123\ntags: [2019, null, [a, b]]\n---\nx\n",
    "2019-03-08-number-tags.md": "---\ntags: 2019\n---\nx\n",
    "2019-03-09-escape-+ %20[].md": "---\n---\nodd name\n",
    "2019-03-10-trailing-dots...md": "---\n---\ndots\n",
    "2019-3-1-no-zeroes.md": "---\ntitle: Zeroes\n---\nx\n",
    "2019-03-11-perma.md": "---\npermalink: /jobs/:year/:title/\n---\nx\n",
    "2019-03-12-traversal.md": "---\npermalink: /%2e%2e/%2e%2e/away.html\n---\nx\n",
    "2019-03-13-crlf.md": "---\r\ntitle: CRLF\r\ntags: [r, n]\r\n---\r\nbody\r\n",
    "2019-03-14-bom.md": "\ufeff---\ntitle: BOM\n---\nbody\n",
    "2019-03-15-Mixed-Case.markdown": "---\ncategories: [Tech, tech]\n---\nx\n",
    "2019-03-16-unpublished.md": "---\npublished:\n---\nempty published\n",
    "2019-03-17-html.html": "---\ntitle: HTML post\n---\n<p>html</p>\n",
    "2019-03-18-date-override.md": "---\ndate: 2018-12-31 23:59:59 +01:00\n---\nx\n",
    "sub/dir/2019-03-19-nested.md": "---\ntitle: Nested\n---\nx\n",
}


def _write_site(root: Path, permalink: str) -> Path:
    shutil.copytree(EXAMPLE, root)
    posts = root / "_posts"
    for name, text in TRICKY.items():
        (posts / name).parent.mkdir(parents=True, exist_ok=True)
        (posts / name).write_bytes(text.encode())
    config = (root / "_config.yml").read_text()
    (root / "_config.yml").write_text(config.replace(
        "permalink: /:year/:month/:day/:title/", f"permalink: {permalink}"))
    (root / "_includes").mkdir()
    (root / "_includes" / "apply-button.html").write_text("<a href='/apply'>Apply</a>")
    plugins = root / "_plugins"
    plugins.mkdir()
    shutil.copy(Path(__file__).parent / "jekyll" / "dump.rb", plugins / "dump.rb")
    return root


@pytest.mark.skipif(shutil.which("jekyll") is None, reason="jekyll is not installed")
@pytest.mark.parametrize("permalink", ["/:year/:month/:day/:title/", "date", "pretty",
                                       "/:categories/:title:output_ext"])
def test_posts_read_exactly_as_jekyll_reads_them(tmp_path: Path, permalink: str) -> None:
    site = _write_site(tmp_path / "site", permalink)
    dump = tmp_path / "jekyll.json"
    env = {**os.environ, "DIGEST_JEKYLL_DUMP": str(dump), "JEKYLL_ENV": "production"}
    subprocess.run(["jekyll", "build", "-q", "-s", str(site), "-d",
                    str(tmp_path / "_site"), "--plugins", str(site / "_plugins")],
                   check=True, env=env, capture_output=True, timeout=300)
    reference = json.loads(dump.read_text())
    config = tmp_path / "config.yaml"
    config.write_text(f"site:\n  jekyll_config: {site / '_config.yml'}\n"
                      f"posts: {site / '_posts'}\noutput: out\nstate: state\n")
    result = CliRunner().invoke(main, ["--config", str(config), "posts", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    ours = json.loads(result.stdout)
    assert len(reference["posts"]) > 25  # the comparison below really compares something
    assert compare(ours, reference) == []
