"""Hugo's rules one at a time, and the errors digest gives where Hugo would stop or guess:
config (both generators named, a bad hugo.toml line, `[permalinks.page]`, custom
taxonomies), front matter (unclosed, bad TOML/YAML/JSON lines), dates, urlize, rendering."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.config import HugoSite, Site
from digest.config.file import read_config
from digest.errors import ConfigError, PostError
from digest.posts.content import PageContext
from digest.posts.hugo import pages, parse_date, parse_hugo_post, permalink, urlize
from digest.posts.hugo_render import render_body, render_hugo_post

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "hugo"
SITE = Site(timezone="America/New_York", hugo=HugoSite(section="blog", sections=("blog",),
                                                       permalink="/:year/:slug/"))


def _site(tmp_path: Path, hugo_toml: str) -> Path:
    root = tmp_path / "site"
    shutil.copytree(FIXTURE, root)
    (root / "hugo.toml").write_text(hugo_toml)
    return root


def _config(tmp_path: Path, site_block: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"site:\n{site_block}posts: site/content/blog\noutput: out\n"
                      "state: state\n")
    return config


def test_naming_both_configs_is_an_error_at_its_line(tmp_path: Path) -> None:
    _site(tmp_path, 'baseURL = "https://example.org/"\n')
    config = _config(tmp_path, "  jekyll_config: site/_config.yml\n"
                               "  hugo_config: site/hugo.toml\n")
    with pytest.raises(ConfigError) as caught:
        read_config(config)
    (problem,) = caught.value.problems
    assert problem.line == 3 and "both" in problem.message


def test_a_bad_hugo_toml_line_is_named(tmp_path: Path) -> None:
    _site(tmp_path, 'baseURL = "https://example.org/"\ntitle = \n')
    with pytest.raises(ConfigError) as caught:
        read_config(_config(tmp_path, "  hugo_config: site/hugo.toml\n"))
    (problem,) = caught.value.problems
    assert problem.path.name == "hugo.toml" and problem.line == 2


def test_hugo_settings_and_the_newer_permalinks_page_form(tmp_path: Path) -> None:
    _site(tmp_path, 'baseURL = "https://example.org/sub/"\ntitle = "T"\n'
                    'languageCode = "de-DE"\ntimeZone = "Europe/Berlin"\n'
                    '[permalinks.page]\nblog = "/:section/:slugorfilename/"\n'
                    '[taxonomies]\ntag = "tags"\nseries = "series"\ncategory = "categories"\n')
    config = read_config(_config(tmp_path, "  hugo_config: site/hugo.toml\n  title: Ours\n"))
    site = config.site
    assert (site.url, site.baseurl, site.lang, site.timezone) == \
        ("https://example.org", "/sub", "de-DE", "Europe/Berlin")
    assert site.title == "Ours"  # config.yaml's site settings win, as with Jekyll
    assert site.hugo is not None and site.hugo.permalink == "/:section/:slugorfilename/"
    assert site.hugo.tag_taxonomies == ("tags", "series")
    assert site.hugo.category_taxonomies == ("categories",)
    assert config.hugo_config == tmp_path / "site" / "hugo.toml"


def test_an_unknown_permalink_token_is_named(tmp_path: Path) -> None:
    _site(tmp_path, '[permalinks]\nblog = "/:year/:nonsense/"\n')
    with pytest.raises(ConfigError) as caught:
        read_config(_config(tmp_path, "  hugo_config: site/hugo.toml\n"))
    (problem,) = caught.value.problems
    assert problem.line == 2 and "':nonsense'" in problem.message


def _parse(text: str, relpath: str = "post.md", site: Site = SITE,
           now: datetime | None = None) -> object:
    return parse_hugo_post(Path("/x") / relpath, relpath, text.encode(), site, now=now)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("---\ntitle: x\ndate: 2020-01-01\n", 1, "never closed"),
    ("+++\ntitle = \"x\"\ndate = 2020-01-01\n", 1, "never closed"),
    ("+++\ntitle = \"x\"\ndate = \n+++\n", 3, "TOML"),
    ("---\ntitle: x\ndate: [\n---\n", 4, "YAML"),
    ('{\n"title": "x",\n"date": 2020\n"tags": []\n}\n', 4, "JSON"),
    ("---\ntitle: x\ndate: 2020-13-45\n---\n", 3, "date"),
    ("---\ntitle: x\n---\nno date\n", None, "no date"),
])
def test_front_matter_errors_name_the_line(text: str, line: int | None, words: str) -> None:
    with pytest.raises(PostError) as caught:
        _parse(text)
    assert caught.value.problem.line == line
    assert words in caught.value.problem.message


def test_custom_taxonomies_are_tags_and_repeats_are_dropped() -> None:
    site = Site(hugo=HugoSite(section="blog", tag_taxonomies=("tags", "series"),
                              category_taxonomies=("categories",)))
    post = _parse("---\ndate: 2020-01-01\ntags: [A, a, A]\nseries: [S]\ncategories: C\n---\n",
                  site=site)
    assert post.tags == ("A", "a", "S") and post.categories == ("C",)  # type: ignore[attr-defined]


def test_expiry_is_judged_against_the_time_of_reading() -> None:
    text = "---\ndate: 2020-01-01\nexpiryDate: 2030-01-01\n---\n"
    before = _parse(text, now=datetime(2029, 1, 1, tzinfo=UTC))
    after = _parse(text, now=datetime(2031, 1, 1, tzinfo=UTC))
    assert before.published and not after.published  # type: ignore[attr-defined]


def test_a_later_publish_date_dates_the_post() -> None:
    post = _parse("---\ndate: 2020-01-01T00:00:00Z\npublishDate: 2020-02-01T00:00:00Z\n---\n")
    assert post.date == datetime(2020, 2, 1, tzinfo=UTC)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "expected"), [
    ("Wed, 29 Mar 2017 23:32:27 -0800", datetime(2017, 3, 29, 23, 32, 27,
                                                 tzinfo=timezone(timedelta(hours=-8)))),
    ("2019-04-29T00:00:00Z", datetime(2019, 4, 29, tzinfo=UTC)),
    ("2021-02-23T00:00:00.000+00:00", datetime(2021, 2, 23, tzinfo=UTC)),
    ("2019-07-31", datetime(2019, 7, 31, tzinfo=ZoneInfo("America/New_York"))),
    ("2020-06-30 22:15:00 +02:00", datetime(2020, 6, 30, 22, 15,
                                            tzinfo=timezone(timedelta(hours=2)))),
    ("02 Jan 2006", datetime(2006, 1, 2, tzinfo=ZoneInfo("America/New_York"))),
])
def test_date_spellings(text: str, expected: datetime) -> None:
    assert parse_date(text, ZoneInfo("America/New_York")) == expected


@pytest.mark.parametrize(("text", "url"), [  # each checked against hugo 0.111
    ("Linkerd 2.10 and Extensions", "linkerd-2.10-and-extensions"),
    ("C++ & Go: 2.10 — what's new?", "c-go-2.10-whats-new"),
    ("  lead  -- trail  ", "lead--trail"),
    ("x.y,z;w=v+u*t!s$r", "x.yzwv-utsr"),
    ("Ünïcödé emoji 🚀 done", "%C3%BCn%C3%AFc%C3%B6d%C3%A9-emoji-done"),
])
def test_urlize_as_hugo(text: str, url: str) -> None:
    assert urlize(text) == url


def test_newer_tokens_and_the_default_permalink() -> None:
    hugo = HugoSite(section="blog", sections=("blog",), permalink="/:contentbasename/")
    when = datetime(2020, 1, 1, tzinfo=UTC)
    assert permalink(when, "T", "", "b/index.md", hugo) == "/b/"
    default = HugoSite(section="blog", sections=("blog",))
    assert permalink(when, "T", "", "Sub Dir/My Post.md", default) == "/blog/sub-dir/my-post/"
    assert permalink(when, "T", "s", "b/index.md", default) == "/blog/s/"


def test_bundle_resources_are_not_pages() -> None:
    stats = {"a.md": (1, 1), "b/index.md": (1, 1), "b/notes.md": (1, 1), "b/img/x.md": (1, 1),
             "b/pic.png": (1, 1), "c/d.markdown": (1, 1), "e.txt": (1, 1), "bad": (-1, 2)}
    assert set(pages(stats)) == {"a.md", "b/index.md", "c/d.markdown", "bad"}


def test_rendering_is_commonmark_with_shortcodes_dropped(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("---\ndate: 2020-01-01\n---\nIntro [it]({{< ref \"x.md\" >}}) **bold**\n\n"
                    "| a | b |\n|---|---|\n| 1 | 2 |\n\n{{% note %}}kept{{% /note %}}\n"
                    "<!--more-->\nrest {{< youtube abc_DEF-1 >}}\n\n"
                    "{{< figure src=\"/f.png\" caption=\"A <cap>\" >}}\n\n"
                    "Written: {{</* ref \"y\" */>}}\n")
    post = parse_hugo_post(page, "p.md", page.read_bytes(), SITE)
    ctx = PageContext("https://example.org", "", "T", "https://example.org/p/", "",
                      {"x": "https://example.org/x/"})
    rendered = render_hugo_post(page, post, ctx)
    assert "<table>" in rendered.html
    assert '<a href="https://example.org/x/">it</a>' in rendered.html  # ref: the post's URL
    assert 'href="https://www.youtube.com/watch?v=abc_DEF-1"' in rendered.html
    assert '<img src="https://example.org/f.png"' in rendered.html
    assert "A &lt;cap&gt;" in rendered.html
    # a commented-out call shows as written
    assert "Written: {{&lt; ref &ldquo;y&rdquo; &gt;}}" in rendered.html
    assert "kept" in rendered.html and "<strong>bold</strong>" in rendered.html
    assert "Intro" in rendered.summary and "rest" not in rendered.summary
    assert "kept" in rendered.summary  # the summary runs up to <!--more-->


def test_editing_hugo_toml_invalidates_the_cached_config(tmp_path: Path) -> None:
    from digest.config import load_config

    _site(tmp_path, 'title = "First"\n')
    config = _config(tmp_path, "  hugo_config: site/hugo.toml\n")
    (tmp_path / "state").mkdir()  # the cache lives in the state folder, once there is one
    assert load_config(config).site.title == "First"
    assert list((tmp_path / "state").iterdir())  # kept
    assert load_config(config).site.title == "First"
    (tmp_path / "site" / "hugo.toml").write_text('title = "Second"\n')
    assert load_config(config).site.title == "Second"


def test_a_page_is_unpublished_once_its_expiry_date_passes_without_being_edited(
        tmp_path: Path) -> None:
    import json
    import time

    from click.testing import CliRunner

    from digest.cli.commands import main

    root = _site(tmp_path, 'baseURL = "https://example.org/"\n')
    soon = datetime.now(UTC) + timedelta(seconds=2)
    (root / "content" / "blog" / "soon.md").write_text(
        f"---\ntitle: Soon gone\ndate: 2020-01-01T00:00:00Z\n"
        f"expiryDate: {soon.isoformat()}\n---\nx\n")
    config = _config(tmp_path, "  hugo_config: site/hugo.toml\n")

    def titles() -> set[str]:
        result = CliRunner().invoke(main, ["--config", str(config), "posts", "--json"])
        return {p["title"] for p in json.loads(result.stdout)["posts"]}

    assert "Soon gone" in titles()
    assert "Soon gone" in titles()  # read from the cache now
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    assert "Soon gone" not in titles()  # the cached reading was not trusted past its expiry


def test_a_digest_of_a_hugo_section(tmp_path: Path) -> None:
    """End to end: the week's Hugo posts in a digest, each with its summary (up to
    <!--more-->, else the first paragraph) and its Hugo URL."""
    from click.testing import CliRunner

    from digest.cli.commands import main

    _site(tmp_path, 'baseURL = "https://example.org/"\ntitle = "Hugo fixture"\n'
                    'timeZone = "America/New_York"\n'
                    '[permalinks]\nblog = "/:year/:month/:day/:slug/"\n')
    (tmp_path / "subscribers.yaml").write_text("- email: ana@example.org\n")
    config = tmp_path / "config.yaml"
    config.write_text("site:\n  hugo_config: site/hugo.toml\nposts: site/content/blog\n"
                      "output: out\nstate: state\nsubscribers: subscribers.yaml\n"
                      "digest:\n  from: Blog <blog@example.org>\n")
    result = CliRunner().invoke(main, ["--config", str(config), "preview", "--as-of",
                                       "2020-07-03T00:00:00Z", "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    (text,) = [p.read_text() for p in (tmp_path / "p").glob("*.txt")]
    assert "Spaced zone" in text and "https://example.org/2020/06/30/spaced-zone/" in text
    assert "Body" in text and "after the summary" not in text  # cut at <!--more-->


@pytest.mark.parametrize("text", [
    "+++\na = " + "[" * 50_000 + "]" * 50_000 + "\n+++\n",
    '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}\n",
    '{"a": ' + "1" * 5_000 + "}\n",
    "+++\na = " + "1" * 5_000 + "\n+++\n",
])
def test_hostile_front_matter_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(PostError) as caught:
        _parse(text)
    assert "nests too deep" in caught.value.problem.message or \
        "cannot be read" in caught.value.problem.message


@pytest.mark.parametrize(("name", "text"), [
    ("config.yaml", "baseURL: https://example.org/\ntitle: From YAML\nPermalinks:\n"
                    "  blog: /:year/:slug/\n"),
    ("config.json", '{"baseURL": "https://example.org/", "title": "From JSON",\n'
                    ' "permalinks": {"blog": "/:year/:slug/"}}\n'),
    ("config.toml", 'baseURL = "https://example.org/"\ntitle = "From TOML"\n'
                    '[permalinks]\nblog = "/:year/:slug/"\n'),
])
def test_hugo_config_in_each_format(tmp_path: Path, name: str, text: str) -> None:
    root = _site(tmp_path, "")
    (root / name).write_text(text)
    config = read_config(_config(tmp_path, f"  hugo_config: site/{name}\n"))
    assert config.site.title.startswith("From ")
    assert config.site.hugo is not None and config.site.hugo.permalink == "/:year/:slug/"


def test_a_bad_permalink_in_yaml_config_is_named_at_its_line(tmp_path: Path) -> None:
    root = _site(tmp_path, "")
    (root / "config.yaml").write_text("title: T\nPermalinks:\n  blog: /:nope/\n")
    with pytest.raises(ConfigError) as caught:
        read_config(_config(tmp_path, "  hugo_config: site/config.yaml\n"))
    (problem,) = caught.value.problems
    assert problem.line == 3 and problem.path.name == "config.yaml"


def test_a_hugo_sites_titles_keep_their_straight_quotes_in_feeds(tmp_path: Path) -> None:
    """jekyll-feed smartifies titles; Hugo's feeds print `.Title` as written."""
    import feedparser
    from click.testing import CliRunner

    from digest.cli.commands import main

    root = _site(tmp_path, 'baseURL = "https://example.org/"\ntitle = "Hugo fixture"\n')
    (root / "content" / "blog" / "quotes.md").write_text(
        '---\ntitle: "It\'s \\"done\\" -- almost..."\ndate: 2020-07-01T10:00:00Z\n---\n'
        'Body.\n')
    config = _config(tmp_path, "  hugo_config: site/hugo.toml\n")
    result = CliRunner().invoke(main, ["--config", str(config), "build", "--as-of",
                                       "2020-07-03T00:00:00Z"])
    assert result.exit_code in (0, 1), result.output
    titles = [e.title for e in feedparser.parse((tmp_path / "out" / "feed.xml").read_bytes())
              .entries]
    assert 'It\'s "done" -- almost...' in titles, titles


# What the real hugo (Goldmark, default settings) wrote for these bodies, checked by hand
# (markdown-it spells a void tag <br />, Goldmark <br>: the same HTML)
GOLDMARK_DEFAULTS = [
    ("It's \"quoted\" and 'single' -- en --- em ... dots << a >> (c) +- 1--2",
     "<p>It&rsquo;s &ldquo;quoted&rdquo; and &lsquo;single&rsquo; &ndash; en &mdash; em "
     "&hellip; dots &laquo; a &raquo; (c) +- 1&ndash;2</p>\n"),
    ("## Hello, World! It's `code`\n\n## Hello, World! It's `code`\n\n"
     "## So why _do_ `x` it's\n",
     '<h2 id="hello-world-its-code">Hello, World! It&rsquo;s <code>code</code></h2>\n'
     '<h2 id="hello-world-its-code-1">Hello, World! It&rsquo;s <code>code</code></h2>\n'
     '<h2 id="so-why-_do_-x-its">So why <em>do</em> <code>x</code> it&rsquo;s</h2>\n'),
    ("See https://example.com/x?a=1 and www.foo.org.",
     '<p>See <a href="https://example.com/x?a=1">https://example.com/x?a=1</a> and '
     '<a href="https://www.foo.org">www.foo.org</a>.</p>\n'),
    ("a buoyant.io b@c.org ftp://f.org/x",
     '<p>a buoyant.io <a href="mailto:b@c.org">b@c.org</a> '
     '<a href="ftp://f.org/x">ftp://f.org/x</a></p>\n'),
    ("- [ ] todo\n- [x] done\n",
     '<ul>\n<li><input disabled="" type="checkbox"> todo</li>\n'
     '<li><input checked="" disabled="" type="checkbox"> done</li>\n</ul>\n'),
    ("Term\n: Def\n", "<dl>\n<dt>Term</dt>\n<dd>Def</dd>\n</dl>\n"),
    ("Text[^1].\n\n[^1]: Note.\n",
     '<p>Text<sup id="fnref:1"><a href="#fn:1" class="footnote-ref" role="doc-noteref">1'
     '</a></sup>.</p>\n<div class="footnotes" role="doc-endnotes">\n<hr>\n<ol>\n'
     '<li id="fn:1">\n<p>Note.&#160;<a href="#fnref:1" class="footnote-backref" '
     'role="doc-backlink">&#x21a9;&#xfe0e;</a></p>\n</li>\n</ol>\n</div>\n'),
    ("Julia Evans'\nnext \"a\"\n\nthe dogs'  \nbone\n",
     "<p>Julia Evans'\nnext &ldquo;a&rdquo;</p>\n<p>the dogs&rsquo;<br />\nbone</p>\n"),
    ("Typed \u2019 and `it's -- code`", "<p>Typed \u2019 and <code>it's -- code</code></p>\n"),
]


@pytest.mark.parametrize(("source", "expected"), GOLDMARK_DEFAULTS)
def test_rendering_matches_goldmark_defaults(source: str, expected: str) -> None:
    assert render_body(source, ".md") == expected
