"""Jekyll 4.3's rules, as a post's author sees them: dates, titles, tags, categories,
permalinks, which files count as posts, excerpts and what Liquid leaves in a feed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    NOW,
    SITE_TZ,
    build_site,
    by_path,
    make_site,
    output,
    parse_feed,
    post,
    read_site,
    write_posts,
)

UTC_OFFSET_SUMMER = "-04:00"  # America/New_York in May


def _one(tmp_path: Path, name: str, text: str, **site: Any):
    corpus = read_site(make_site(tmp_path, {name: text}, **site))
    assert corpus.rejected == []
    assert [p.path for p in corpus.posts] == [name]
    return corpus.posts[0]


# --- dates ------------------------------------------------------------------------------

def test_date_from_file_name_is_midnight_in_the_site_timezone(tmp_path):
    p = _one(tmp_path, "2019-05-01-a.md", post("A"))
    assert p.date.isoformat() == "2019-05-01T00:00:00-04:00"


def test_date_only_front_matter_is_midnight_in_the_site_timezone(tmp_path):
    p = _one(tmp_path, "2019-05-01-a.md", post("A", date="2019-05-03"))
    assert p.date.isoformat() == "2019-05-03T00:00:00-04:00"


def test_unquoted_date_with_seconds_is_utc_as_psych_reads_it(tmp_path):
    p = _one(tmp_path, "2019-05-01-a.md", post("A", date="2019-05-01 10:00:00"))
    assert p.date.isoformat() == "2019-05-01T06:00:00-04:00"


def test_quoted_date_with_seconds_is_site_local(tmp_path):
    p = _one(tmp_path, "2019-05-01-a.md", post("A", date='"2019-05-01 10:00:00"'))
    assert p.date.isoformat() == "2019-05-01T10:00:00-04:00"


def test_unquoted_date_without_seconds_is_site_local(tmp_path):
    p = _one(tmp_path, "2019-05-01-a.md", post("A", date="2019-05-01 10:00"))
    assert p.date.isoformat() == "2019-05-01T10:00:00-04:00"


@pytest.mark.parametrize(("written", "expected"), [
    ("2019-05-01 10:00:00 +0200", "2019-05-01T04:00:00-04:00"),
    ("2019-05-01T10:00:00Z", "2019-05-01T06:00:00-04:00"),
    ('"2019-05-01 10:00:00 -07:00"', "2019-05-01T13:00:00-04:00"),
])
def test_date_with_an_offset_is_converted_to_the_site_timezone(tmp_path, written, expected):
    p = _one(tmp_path, "2019-05-01-a.md", post("A", date=written))
    assert p.date.isoformat() == expected


def test_front_matter_date_decides_the_url_not_the_file_name(tmp_path):
    p = _one(tmp_path, "2019-05-01-a.md", post("A", date="2019-06-15"))
    assert p.url == "/2019/06/15/a.html"


@pytest.mark.parametrize("published", ["false", ""])
def test_unpublished_posts_are_skipped(tmp_path, published):
    config = make_site(tmp_path, {"2019-05-01-draft.md": post("Draft", published=published),
                                  "2019-05-02-live.md": post("Live", published="true")})
    corpus = read_site(config)
    assert [p.path for p in corpus.posts] == ["2019-05-02-live.md"]
    assert corpus.unpublished == 1
    assert corpus.rejected == []


def test_future_post_is_skipped_until_its_time_comes(tmp_path):
    config = make_site(tmp_path, {"2019-05-01-old.md": post("Old"),
                                  "2024-07-01-soon.md": post("Soon", tags="[t]")})
    before = build_site(config, now=datetime(2024, 6, 30, 23, 59, tzinfo=SITE_TZ))
    assert (before.found.count, before.found.future) == (1, 1)
    assert [e.title for e in parse_feed(output(config) / "feed.xml").entries] == ["Old"]
    assert not (output(config) / "feed/by_tag/t.xml").exists()

    after = build_site(config, now=datetime(2024, 7, 1, 0, 0, 1, tzinfo=SITE_TZ))
    assert (after.found.count, after.found.future) == (2, 0)
    assert "feed.xml" in after.written
    assert [e.title for e in parse_feed(output(config) / "feed.xml").entries] == ["Soon", "Old"]
    assert [e.title for e in parse_feed(output(config) / "feed/by_tag/t.xml").entries] == [
        "Soon"]


def test_future_post_is_published_with_future_flag(tmp_path):
    config = make_site(tmp_path, {"2019-05-01-old.md": post("Old"),
                                  "2030-01-01-later.md": post("Later")})
    report = build_site(config, now=NOW, future=True)
    assert (report.found.count, report.found.future) == (2, 0)
    assert [e.title for e in parse_feed(output(config) / "feed.xml").entries] == ["Later", "Old"]


# --- titles -----------------------------------------------------------------------------

def test_title_falls_back_to_the_titleized_slug(tmp_path):
    p = _one(tmp_path, "2019-01-02-hello-big-world.md", "---\ntags: [a]\n---\nBody.\n")
    assert p.title == "Hello Big World"


def test_title_fallback_without_front_matter_at_all(tmp_path):
    p = _one(tmp_path, "2019-01-02-no-FRONT-matter.md", "Just a body.\n")
    assert p.title == "No Front Matter"
    assert p.url == "/2019/01/02/no-FRONT-matter.html"


def test_numeric_title_is_printed_as_text(tmp_path):
    p = _one(tmp_path, "2019-01-02-n.md", post("2019"))
    assert p.title == "2019"


# --- tags and categories ----------------------------------------------------------------

@pytest.mark.parametrize(("line", "expected"), [
    ("tags: [python, data science]", ("python", "data science")),
    ("tags:\n  - python\n  - data science", ("python", "data science")),
    ("tags: python remote", ("python", "remote")),
    ("tag: data science", ("data science",)),
    ("tag: solo\ntags: [ignored, too]", ("solo",)),
])
def test_tags_are_read_like_jekyll(tmp_path, line, expected):
    p = _one(tmp_path, "2019-01-02-t.md", f"---\ntitle: T\n{line}\n---\nBody.\n")
    assert p.tags == expected


def test_categories_merge_category_and_categories(tmp_path):
    p = _one(tmp_path, "2019-01-02-c.md", post("C", category="News", categories="[Jobs, Remote]"))
    assert p.categories == ("Jobs", "Remote", "News")
    assert p.url == "/jobs/remote/news/2019/01/02/c.html"


def test_categories_string_is_split_on_spaces(tmp_path):
    p = _one(tmp_path, "2019-01-02-c.md", post("C", categories="Jobs Remote"))
    assert p.categories == ("Jobs", "Remote")


def test_category_feed_lists_the_post(tmp_path):
    config = make_site(tmp_path, {"2019-01-02-c.md": post("C", category="News"),
                                  "2019-01-03-d.md": post("D")})
    build_site(config)
    feed = parse_feed(output(config) / "feed/News.xml")
    assert [e.title for e in feed.entries] == ["C"]


# --- permalinks -------------------------------------------------------------------------

@pytest.mark.parametrize(("style", "url"), [
    (None, "/2019/03/05/Job-Offer.html"),
    ("date", "/2019/03/05/Job-Offer.html"),
    ("pretty", "/2019/03/05/Job-Offer/"),
    ("none", "/Job-Offer.html"),
    ("ordinal", "/2019/064/Job-Offer.html"),
    ("/:year/:month/:day/:title/", "/2019/03/05/Job-Offer/"),
    ("/jobs/:i_month/:slug:output_ext", "/jobs/3/job-offer.html"),
])
def test_permalink_styles(tmp_path, style, url):
    settings = {"permalink": style} if style else {}
    p = _one(tmp_path, "2019-03-05-Job-Offer.md", post("Offer"), **settings)
    assert p.url == url


def test_post_permalink_with_placeholders_wins_over_the_site_style(tmp_path):
    p = _one(tmp_path, "2019-03-05-offer.md",
             post("Offer", permalink="/jobs/:year/:month/:title/"), permalink="pretty")
    assert p.url == "/jobs/2019/03/offer/"


def test_post_permalink_with_an_unknown_placeholder_is_rejected_naming_its_line(tmp_path):
    config = make_site(tmp_path, {"2019-03-05-offer.md": post("Offer", permalink="/:nope/")})
    [problem] = read_site(config).rejected
    assert problem.line == 3
    assert problem.message == "the permalink '/:nope/' uses the unknown placeholder ':nope'"


def test_url_and_baseurl_make_absolute_links_and_ids(tmp_path):
    config = make_site(tmp_path, {"2019-03-05-offer.md": post("Offer", tags="[t]")},
                       baseurl="/blog", url="https://jobs.example.org/")
    build_site(config)
    for name in ("feed.xml", "feed/by_tag/t.xml"):
        entry = parse_feed(output(config) / name).entries[0]
        assert entry.link == "https://jobs.example.org/blog/2019/03/05/offer.html"
        assert entry.id == "https://jobs.example.org/blog/2019/03/05/offer"
    feed = parse_feed(output(config) / "feed.xml").feed
    assert {(link.rel, link.href) for link in feed.links} == {
        ("alternate", "https://jobs.example.org/blog/"),
        ("self", "https://jobs.example.org/blog/feed.xml")}


# --- which files are posts --------------------------------------------------------------

def test_drafts_folder_beside_posts_is_ignored(tmp_path):
    make_site(tmp_path, {"2019-01-01-live.md": post("Live")})
    (tmp_path / "_drafts").mkdir()
    (tmp_path / "_drafts" / "2019-01-02-draft.md").write_text(post("Draft"))
    # point posts: at the site root, as for a Jekyll checkout
    config = make_site(tmp_path, {}, extra={"posts": str(tmp_path)})
    corpus = read_site(config)
    assert [p.title for p in corpus.posts] == ["Live"]
    assert corpus.rejected == []


def test_drafts_dotfiles_underscore_files_and_backups_inside_posts_are_ignored(tmp_path):
    config = make_site(tmp_path, {
        "2019-01-01-live.md": post("Live"),
        "_drafts/2019-01-02-draft.md": post("Draft"),
        ".2019-01-03-hidden.md": post("Hidden"),
        "_2019-01-04-under.md": post("Under"),
        ".git/2019-01-05-git.md": post("Git"),
        "2019-01-06-backup.md~": post("Backup"),
        "#2019-01-07-autosave.md": post("Autosave"),
    })
    corpus = read_site(config)
    assert [p.title for p in corpus.posts] == ["Live"]
    assert corpus.rejected == []
    assert corpus.warnings == []


def test_posts_in_nested_folders_are_published_without_folder_categories(tmp_path):
    p = _one(tmp_path, "2019/jobs/2019-01-10-nested.md", post("Nested"))
    assert p.title == "Nested"
    assert p.url == "/2019/01/10/nested.html"
    assert p.categories == ()


# --- excerpts ---------------------------------------------------------------------------

def _summaries(tmp_path: Path, posts: dict[str, str], **site: Any) -> dict[str, str]:
    config = make_site(tmp_path, posts, **site)
    build_site(config)
    return {e.title: e.summary for e in parse_feed(output(config) / "feed.xml").entries}


def test_excerpt_from_front_matter_wins(tmp_path):
    got = _summaries(tmp_path, {"2019-01-01-a.md": post(
        "A", excerpt="Hand-written summary", body="Body first.\n\nSecond.\n")})
    assert got == {"A": "Hand-written summary"}


def test_excerpt_separator_in_front_matter_cuts_there(tmp_path):
    got = _summaries(tmp_path, {"2019-01-01-a.md": post(
        "A", excerpt_separator="'<!--more-->'", body="One.\n\nTwo.\n<!--more-->\nThree.\n")})
    assert got == {"A": "One. Two."}


def test_site_excerpt_separator_applies_to_every_post(tmp_path):
    got = _summaries(tmp_path, {"2019-01-01-a.md": post(
        "A", body="One.\n\nTwo.\n<!--cut-->\nThree.\n")}, excerpt_separator="<!--cut-->")
    assert got == {"A": "One. Two."}


def test_excerpt_defaults_to_the_first_paragraph(tmp_path):
    got = _summaries(tmp_path, {"2019-01-01-a.md": post(
        "A", body="\n\nFirst *para*\nwraps.\n\nSecond para.\n")})
    assert got == {"A": "First para wraps."}


# --- Liquid and links -------------------------------------------------------------------

def _content(tmp_path: Path, body: str, name: str = "2019-01-07-liquid.md",
             **site: Any) -> str:
    others = {"2019-01-02-other-post.md": post("Other")}
    config = make_site(tmp_path, {name: post("Liquid", body=body), **others}, **site)
    build_site(config)
    for entry in parse_feed(output(config) / "feed.xml").entries:
        if entry.title == "Liquid":
            return str(entry.content[0].value)
    raise AssertionError("no Liquid entry")


def test_raw_block_keeps_its_text_and_drops_the_tags(tmp_path):
    html = _content(tmp_path, "Use {% raw %}{{ page.title }}{% endraw %} in templates.\n")
    assert html == "<p>Use {{ page.title }} in templates.</p>"


def test_site_url_variable_is_filled_in(tmp_path):
    html = _content(tmp_path, "See {{ site.url }}{{ site.baseurl }}/about/ now.\n",
                    baseurl="/blog")
    assert html == "<p>See https://jobs.example.org/blog/about/ now.</p>"


def test_highlight_block_becomes_a_code_block(tmp_path):
    html = _content(tmp_path, "{% highlight python %}\nprint(1 < 2)\n{% endhighlight %}\n")
    assert html == '<pre><code class="language-python">print(1 &lt; 2)\n</code></pre>'


def test_unknown_liquid_tags_and_comments_are_dropped(tmp_path):
    html = _content(tmp_path, "A{% include cta.html %} B{% comment %}secret{% endcomment %}"
                    " C{%- assign x = 1 -%}.\n")
    assert html == "<p>A B C.</p>"


def test_post_url_tag_links_to_the_other_post(tmp_path):
    html = _content(tmp_path, "[prev]({% post_url 2019-01-02-other-post %})\n")
    assert html == ('<p><a href="https://jobs.example.org/2019/01/02/other-post.html" '
                    'rel="noopener noreferrer">prev</a></p>')


def test_a_post_knows_which_posts_it_links_to_exactly_as_rendering_looks_them_up():
    """The build re-renders a post when a post it links to moves (index.py), knowing only
    what linked_posts found at parse time: it must be every name rendering looks up."""
    from digest.posts.content import PageContext, linked_posts, tame_liquid

    asked: list[str] = []

    class Recording(dict[str, str]):
        def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
            asked.append(key)
            return default

    body = ("[a]({% post_url 2019-01-02-a %}) [b]({%- post_url /sub/2019-01-03-b -%})\n"
            "[c]({%post_url 2019-01-04-c-%}) [a again]({% post_url 2019-01-02-a %})\n\n"
            "[d]({% link _posts/2019-01-05-d.md %}) [e]({% link /_posts/x/2019-01-06-e.markdown %})"
            " [page]({% link about.md %}) {% include x.html %} {{ page.url }}\n"
            "{% raw %}`{% post_url 2019-01-07-f %}`{% endraw %} {% comment %}\n"
            "{% link _posts/2019-01-08-g.md %}{% endcomment %} {% post_url 2019-01-02-a %}\n")
    tame_liquid(body, PageContext("https://x.org", "", "X", "https://x.org/p", "P",
                                  Recording()))
    links = linked_posts(body)
    assert tuple(stem for stem, _ in links) == tuple(dict.fromkeys(asked)) == (
        "2019-01-02-a", "2019-01-03-b", "2019-01-04-c", "2019-01-05-d", "2019-01-06-e")
    assert [line for _, line in links] == [0, 0, 1, 3, 3]  # of the first link to each
    assert linked_posts("No tags at all, {{ site.url }} only.\n") == ()


def test_relative_url_filter_on_a_string_never_leaks(tmp_path):
    """Regression: `{{ "/x/" | relative_url }}` used to reach the feed verbatim."""
    html = _content(tmp_path, '[About]({{ "/about/" | relative_url }}) and '
                    "![logo]({{ '/logo.png' | absolute_url }})\n")
    assert "{{" not in html
    assert 'href="https://jobs.example.org/about/"' in html
    assert 'src="https://jobs.example.org/logo.png"' in html


def test_link_tag_to_a_post_file_gives_the_post_url(tmp_path):
    """Regression: `{% link _posts/NAME.md %}` used to become <site>/_posts/NAME.md."""
    html = _content(tmp_path, "[prev]({% link _posts/2019-01-02-other-post.md %})\n")
    assert 'href="https://jobs.example.org/2019/01/02/other-post.html"' in html


def test_no_liquid_markup_reaches_the_feed(tmp_path):
    body = ("{% raw %}raw{% endraw %} {{ site.url }} {{ page.title }} {% include x.html %}\n\n"
            "{% highlight ruby %}\nputs 1\n{% endhighlight %}\n\n"
            "{% if site.x %}shown{% endif %} {{ page.date | date: '%Y' }}\n")
    html = _content(tmp_path, body)
    assert "{%" not in html and "{{" not in html and "%}" not in html and "}}" not in html
    assert "https://jobs.example.org Liquid" in html
    assert '<code class="language-ruby">puts 1' in html


def test_relative_links_and_images_are_made_absolute(tmp_path):
    html = _content(tmp_path, "[a](other.html) [b](/about/) ![c](img/pic.png) "
                    "[d](https://elsewhere.example/) [e](#top) [f](mailto:hr@example.org)\n"
                    '\n<img src="../up.png" alt="u">\n', baseurl="/blog")
    assert 'href="https://jobs.example.org/blog/2019/01/07/other.html"' in html
    assert 'href="https://jobs.example.org/about/"' in html
    assert 'src="https://jobs.example.org/blog/2019/01/07/img/pic.png"' in html
    assert 'href="https://elsewhere.example/"' in html
    assert 'href="#top"' in html
    assert 'href="mailto:hr@example.org"' in html
    assert 'src="https://jobs.example.org/blog/2019/01/up.png"' in html


def test_raw_html_scripts_and_handlers_are_sanitised(tmp_path):
    html = _content(tmp_path, '<p onclick="x()">Hi <a href="javascript:alert(1)">x</a></p>\n'
                    "\n<iframe src=\"https://evil.example/\"></iframe>\n")
    assert "onclick" not in html
    assert "javascript:" not in html
    assert "<iframe" not in html
    assert "Hi " in html


def test_changing_the_site_permalink_style_reparses_cached_posts(tmp_path):
    config = make_site(tmp_path, {"2019-03-05-offer.md": post("Offer")})
    assert read_site(config).posts[0].url == "/2019/03/05/offer.html"
    config = make_site(tmp_path, {}, permalink="pretty")
    corpus = read_site(config)
    assert corpus.parsed == 1
    assert corpus.posts[0].url == "/2019/03/05/offer/"


def test_editing_a_post_is_seen_through_the_parse_cache(tmp_path):
    config = make_site(tmp_path, {"2019-03-05-offer.md": post("Offer", tags="[a]")})
    assert read_site(config).parsed == 1
    again = read_site(config)
    assert again.parsed == 0
    assert by_path(again)["2019-03-05-offer.md"].tags == ("a",)
    write_posts(tmp_path, {"2019-03-05-offer.md": post("Offer v2", tags="[a, bigger]")})
    edited = read_site(config)
    assert edited.parsed == 1
    assert by_path(edited)["2019-03-05-offer.md"].title == "Offer v2"
    assert by_path(edited)["2019-03-05-offer.md"].tags == ("a", "bigger")


def _absolute_url_in_full(root: str, url: str) -> str:
    """absolute_url without its shortcut for plain URLs: quote, %-decode, remove dot segments."""
    from urllib.parse import quote

    from digest.posts.jekyll import _PCT, _UNRESERVED, _remove_dot_segments

    path = quote(url, safe="/:@!$&'()*+,;=-._~%?#")
    path = _PCT.sub(lambda m: chr(int(m.group(1), 16)) if chr(int(m.group(1), 16)) in
                    _UNRESERVED else "%" + m.group(1).upper(), path)
    split = root.find("/", root.find("//") + 2) if "//" in root else -1
    origin, base = (root, "") if split < 0 else (root[:split], root[split:])
    return origin + _remove_dot_segments(base + path)


def test_absolute_url_shortcut_gives_what_full_normalisation_gives():
    import random

    from digest.posts.jekyll import absolute_url

    pieces = ["a", "Z9", "-", "_", ".", "..", "/", "~", "%2e", "%41", "%2F", "é", " ", "?",
              "#", "q=1&b", "'", "(", ":", "@", "+"]
    rng = random.Random(7)
    urls = ["/", "//x", "/2024/01/02/a-b/", "/a/./b", "/a/../b", "/a/b/..", "/.x/y",
            *("/" + "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 9)))
              for _ in range(3000))]
    for root in ("https://a.example", "https://a.example/base", "https://a.example/b/./c",
                 "", "/sub"):
        for url in urls:
            assert absolute_url(root, url) == _absolute_url_in_full(root, url), (root, url)


def test_the_ascii_slug_shortcut_agrees_with_the_per_character_rule() -> None:
    """slugify takes one regex pass over ASCII text; it must say what utils.rb's
    per-character rule (the path non-ASCII text takes) says, on any printable ASCII."""
    import random
    import string

    from digest.posts.jekyll import _slug_unicode, slugify

    rng = random.Random(4)
    for _ in range(20000):
        text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12)))
        for pretty in (False, True):
            slow = _slug_unicode(text, pretty)
            slow = slow[1:] if slow.startswith("-") else slow
            slow = slow[:-1] if slow.endswith("-") else slow
            assert slugify(text, pretty=pretty, cased=True) == slow, (text, pretty)


FRONT_MATTERS = [
    "title: Plain\ntags: [union, 1, 1.5, true, null, ~, 2019-03-13, '007']\n",
    "a: &x [1, 2]\nb: *x\nc: {d: yes, e: No, f: 0o17}\n",
    "date: 2019-03-13 09:00:00 -0500\nexcerpt: |\n  two\n  lines\nk: !!str 12\n",
    "base: &b {x: 1}\nmerged:\n  <<: *b\n  y: '2'\nempty:\nnested: [[a, b], {c: d}]\n",
    "title: \"quoted: colon\"\npermalink: /:year/:title/\npublished: false\n",
    "n: 12\nq: '12'\nt: true\nu: 'true'\n",
]


@pytest.mark.parametrize("text", FRONT_MATTERS)
def test_front_matter_shortcuts_read_what_pyyaml_reads(text: str) -> None:
    """FrontMatterLoader skips PyYAML's dispatch for plain strings and memoises implicit
    types; both must give what the same loader without them gives, twice over (the
    memo is warm the second time)."""
    import yaml

    from digest.posts.parse import FrontMatterLoader
    from digest.util.yamlsource import SafeLoader

    class Plain(SafeLoader):  # type: ignore[valid-type,misc]
        pass

    Plain.add_constructor("tag:yaml.org,2002:timestamp",
                          FrontMatterLoader.yaml_constructors["tag:yaml.org,2002:timestamp"])
    expected = yaml.load(text, Loader=Plain)
    for _ in range(2):
        got = yaml.load(text, Loader=FrontMatterLoader)
        assert got == expected
        assert repr(got) == repr(expected)  # same types too: 1 is not '1', True is not 'yes'
