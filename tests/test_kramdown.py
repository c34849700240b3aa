# ruff: noqa: RUF001 - the expected strings are kramdown's curly quotes and dashes
"""Markdown renders as Jekyll's kramdown renders it (GFM input, Jekyll's defaults), rule by
rule, and titles are smartified as jekyll-feed prints them.

Every expected string is what real Jekyll 4.3.1 (kramdown 2.4.0, kramdown-parser-gfm 1.1.0)
produced for the source beside it, taken from a `jekyll build` with
scripts/jekyll_content_dump.rb. Only whitespace between tags differs (kramdown indents
lists and tables), and is ignored. scripts/kramdown_compare.py measures the same agreement
over whole corpora (../shared); on 2026-12-05, before → after this renderer:
jobs board 701 → 1032 of 1044 posts identical HTML (720 → 1039 identical text, titles
1025 → 1042), Jekyll's own news posts 3 → 91 of 102 (text 22 → 97, titles 94 → 102).
Then with kramdown's lists (kramdown_lists.py), links with spaces and the site's
`kramdown:` settings: jobs board 1042 of 1044 (text 1042, titles 1042; the other two have
front matter Jekyll reads and digest rejects); news posts unchanged at 91 (text 97, titles
102: the rest is Liquid, `{% for %}` link definitions, `{% highlight %}` and links to
`_docs` pages, not kramdown).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import build_site, config_of, make_site, output, parse_feed, post

from digest.config.settings import Kramdown
from digest.errors import ConfigError
from digest.posts.content import render, smart_title, strip_html
from digest.posts.kramdown import header_id, smarten
from digest.posts.kramdown_lists import MAX_DEPTH

_BETWEEN_TAGS = re.compile(r">\s+<")
_BEFORE_BLOCK = re.compile(r"\s+(?=</?(?:ul|ol|li|p|table|h\d|pre|div|blockquote)\b)")


_ROUGE = re.compile(r'<div class="language-(\w+) highlighter-rouge"><div class="highlight">'
                    r'<pre class="highlight"><code>(.*?)</code></pre></div></div>', re.S)


def _normal(fragment: str) -> str:
    """Whitespace between tags, or before a block's tag, ignored; `&quot;` in text is `"`
    (markdown-it escapes it); rouge's code block (no highlighting spans in these cases) as
    markdown-it writes it: digest keeps `<pre><code class="language-x">`, as the wrappers
    hold no text."""
    fragment = _ROUGE.sub(lambda m: "<pre><code" + (
        "" if m.group(1) == "plaintext" else f' class="language-{m.group(1)}"') + ">"
        + m.group(2) + "</code></pre>", fragment)
    return _BEFORE_BLOCK.sub("", _BETWEEN_TAGS.sub("><", fragment)).replace("&quot;", '"').strip()


@pytest.mark.parametrize(("source", "kramdown"), [
    pytest.param("It's Jekyll's site, isn't it?\n",
                 '<p>It’s Jekyll’s site, isn’t it?</p>\n',
                 id='apostrophe'),
    pytest.param('He said "hello" to me.\n',
                 '<p>He said “hello” to me.</p>\n',
                 id='double'),
    pytest.param('He said, "\'Quoted\' words in a larger quote."\n',
                 '<p>He said, “‘Quoted’ words in a larger quote.”</p>\n',
                 id='nested'),
    pytest.param("Back in the '80s and '90s.\n",
                 '<p>Back in the ’80s and ’90s.</p>\n',
                 id='decade'),
    pytest.param('"*foo*" and \'_bar_\'\n',
                 '<p>“<em>foo</em>” and ‘<em>bar</em>’</p>\n',
                 id='before-emphasis'),
    pytest.param("*Custer*'s Last Stand\n",
                 '<p><em>Custer</em>’s Last Stand</p>\n',
                 id='after-emphasis'),
    pytest.param('a -- b --- c, 9-5\n',
                 '<p>a – b — c, 9-5</p>\n',
                 id='dashes'),
    pytest.param('Wait... what?\n',
                 '<p>Wait… what?</p>\n',
                 id='ellipsis'),
    pytest.param('<< a >> and <<1>>\n',
                 '<p>«\xa0a\xa0» and «1»</p>\n',
                 id='guillemets'),
    pytest.param('`it\'s -- "code"...` and it\'s\n\n```\nit\'s "code" -- ...\n```\n',
                 ('<p><code class="language-plaintext highlighter-rouge">it\'s -- "code"...</code>'
                  ' and it’s</p>\n\n<div class="language-plaintext highlighter-rouge"><div '
                  'class="highlight"><pre class="highlight"><code>it\'s "code" -- ...\n</code>'
                  '</pre></div></div>\n'),
                 id='code'),
    pytest.param('text\n\n    it\'s "code"\n\n',
                 ('<p>text</p>\n\n<div class="language-plaintext highlighter-rouge"><div '
                  'class="highlight"><pre class="highlight"><code>it\'s "code"\n</code></pre>'
                  '</div></div>\n\n'),
                 id='indented'),
    pytest.param('<span title="it\'s -- x">it\'s -- "raw"</span> and it\'s\n',
                 '<p><span title="it\'s -- x">it’s – “raw”</span> and it’s</p>\n',
                 id='html'),
    pytest.param('[it\'s "here"](http://x.org/a--b...c?q=\'x\') and '
                 '![it\'s "alt"](/i.png)\n',
                 ('<p><a href="http://x.org/a--b...c?q=\'x\'">it’s “here”</a> and '
                  '<img src="/i.png" alt="it\'s &quot;alt&quot;" /></p>\n'),
                 id='link'),
    pytest.param('Steps:\n\n1) one\n2) two\n',
                 '<p>Steps:</p>\n\n<p>1) one\n2) two</p>\n',
                 id='paren-list'),
    pytest.param('1. one\n2. two\n',
                 '<ol>\n  <li>one</li>\n  <li>two</li>\n</ol>\n',
                 id='dot-list'),
    pytest.param(("# Hello World!\n\n## Hello World!\n\n### Über café & co_op 2\n\n## It's "
                  '"quoted"\n'),
                 ('<h1 id="hello-world">Hello World!</h1>\n\n<h2 id="hello-world-1">Hello '
                  'World!</h2>\n\n<h3 id="über-café--co_op-2">Über café &amp; co_op 2</h3>'
                  '\n\n<h2 id="its-quoted">It’s “quoted”</h2>\n'),
                 id='headers'),
    pytest.param('~~gone~~ here\n',
                 '<p><del>gone</del> here</p>\n',
                 id='strike'),
    pytest.param('foo\n\'bar\' and\n"baz"\n',
                 '<p>foo\n‘bar’ and\n“baz”</p>\n',
                 id='softbreak'),
    pytest.param('\\"not smart\\" and \\\'no\\\'\n',
                 '<p>"not smart" and \'no\'</p>\n',
                 id='escaped'),
    pytest.param('She said "yes".\n\n\'Tis the season, rock \'n\' roll.\n',
                 '<p>She said “yes”.</p>\n\n<p>‘Tis the season, rock ‘n’ roll.</p>\n',
                 id='end-quote'),
    pytest.param("| a | b |\n|---|---|\n| it's | 1 |\n",
                 ('<table>\n  <thead>\n    <tr>\n      <th>a</th>\n      <th>b</th>\n   '
                  ' </tr>\n  </thead>\n  <tbody>\n    <tr>\n      <td>it’s</td>\n      <td>'
                  '1</td>\n    </tr>\n  </tbody>\n</table>\n'),
                 id='table'),
    pytest.param(("First[^a] and second[^2], first again.\n\n[^2]: Two's note.\n[^a]: "
                  'A note with [a link](https://example.org/).\n[^unused]: Never shown.\n'
                  '\n'),
                 ('<p>First<sup id="fnref:a" role="doc-noteref"><a href="#fn:a" class="footnote" '
                  'rel="footnote">1</a></sup> and second<sup id="fnref:2" role="doc-noteref">'
                  '<a href="#fn:2" class="footnote" rel="footnote">2</a></sup>, first '
                  'again.</p>\n\n<div class="footnotes" role="doc-endnotes">\n  <ol>'
                  '\n    <li id="fn:a" role="doc-endnote">\n      <p>A note with <a '
                  'href="https://example.org/">a link</a>.\xa0<a href="#fnref:a" '
                  'class="reversefootnote" '
                  'role="doc-backlink">&#8617;</a></p>\n    </li>\n    <li id="fn:2" '
                  'role="doc-endnote">\n      <p>Two’s note.\xa0<a href="#fnref:2" '
                  'class="reversefootnote" '
                  'role="doc-backlink">&#8617;</a></p>\n    </li>\n  </ol>\n</div>\n'),
                 id='footnotes'),
    pytest.param('Intro\n\nWin|Win is a network.\n\nAfter\n',
                 ('<p>Intro</p>\n\n<table>\n  <tbody>\n    <tr>\n      <td>Win</td>\n'
                  '      <td>Win is a network.</td>\n    </tr>\n  </tbody>\n</table>'
                  '\n\n<p>After</p>\n'),
                 id='pipe-line'),
    pytest.param('* one\n* Develop VAN | Votebuilder materials\n* three\n',
                 ('<ul>\n  <li>one</li>\n  <li>\n    <table>\n      <tbody>\n       '
                  ' <tr>\n          <td>Develop VAN</td>\n          <td>Votebuilder '
                  'materials</td>\n        </tr>\n      </tbody>\n    </table>\n  </li>'
                  '\n  <li>three</li>\n</ul>\n'),
                 id='pipe-item'),
    pytest.param('a | b | c\nd | e\n\nnext\n',
                 ('<table>\n  <tbody>\n    <tr>\n      <td>a</td>\n      <td>b</td>\n'
                  '      <td>c</td>\n    </tr>\n    <tr>\n      <td>d</td>\n      <td>'
                  'e</td>\n      <td>\xa0</td>\n    </tr>\n  </tbody>\n</table>\n\n<p>'
                  'next</p>\n'),
                 id='pipe-rows'),
    pytest.param('Use `a | b` here.\n',
                 ('<p>Use <code class="language-plaintext highlighter-rouge">a | b</code>'
                  ' here.</p>\n'),
                 id='pipe-code'),
    pytest.param('Text line\nWin|Win continues\n',
                 '<p>Text line\nWin|Win continues</p>\n',
                 id='pipe-in-paragraph'),
    pytest.param("<http://a--b.org/it's...> and <me--x@ex.org>\n",
                 ('<p><a href="http://a--b.org/it\'s...">http://a--b.org/it\'s...</a> and '
                  '<a href="mailto:me--x@ex.org">me--x@ex.org</a></p>\n'),
                 id='autolink'),
    # lists, kramdown_lists.py
    pytest.param('* a\n* b\n+ c\n- d\n',
                 '<ul>\n  <li>a</li>\n  <li>b</li>\n  <li>c</li>\n  <li>d</li>\n</ul>\n',
                 id='list-marker-change'),
    pytest.param('Duties:\n1. Analyse data\n  * write reports\n  * present them\n',
                 ('<p>Duties:</p>\n<ol>\n  <li>Analyse data\n    <ul>\n      <li>write '
                  'reports</li>\n      <li>present them</li>\n    </ul>\n  </li>\n</ol>\n'),
                 id='list-lazy-nested'),
    pytest.param('* Research\n* \nThis stipend follows.\n\nDeadline\n',
                 ('<ul>\n  <li>Research</li>\n  <li>This stipend follows.</li>\n</ul>\n\n'
                  '<p>Deadline</p>\n'),
                 id='list-empty-item'),
    pytest.param('* Build it\n* \nWhat we look for:\n\n* A team player\n',
                 ('<ul>\n  <li>Build it</li>\n  <li>\n    <p>What we look for:</p>\n  </li>'
                  '\n  <li>A team player</li>\n</ul>\n'),
                 id='list-empty-item-then-blank'),
    pytest.param('Create opportunities\n2. Delivering trainings\n',
                 ('<p>Create opportunities</p>\n<ol>\n  <li>Delivering trainings</li>\n'
                  '</ol>\n'),
                 id='list-interrupts-paragraph'),
    pytest.param('* one\n* two\n\n\n* three\n* four\n',
                 ('<ul>\n  <li>one</li>\n  <li>\n    <p>two</p>\n  </li>\n  <li>three</li>'
                  '\n  <li>four</li>\n</ul>\n'),
                 id='list-wrap-per-item'),
    pytest.param('* a\n  b\n\n  c\n* d\n',
                 ('<ul>\n  <li>\n    <p>a\nb</p>\n\n    <p>c</p>\n  </li>\n  <li>\n    '
                  '<p>d</p>\n  </li>\n</ul>\n'),
                 id='list-last-item-wrapped'),
    pytest.param('* one\n* Present VAN | Votebuilder materials\nstatewide\n* three\n',
                 ('<ul>\n  <li>one</li>\n  <li>Present VAN | Votebuilder materials\n'
                  'statewide</li>\n  <li>three</li>\n</ul>\n'),
                 id='list-lazy-pipe-line'),
    pytest.param('[See more](https://x.org/job$60,000 to $70,000) and [a](b c "t")\n',
                 ('<p><a href="https://x.org/job$60,000 to $70,000">See more</a> and '
                  '<a href="b c" title="t">a</a></p>\n'),
                 id='link-with-spaces'),
    pytest.param('[a](javascript:alert(1) x) and [b](c d\n',
                 '<p>[a](javascript:alert(1) x) and [b](c d</p>\n',
                 id='link-with-spaces-refused'),  # kramdown links the first: digest never
    pytest.param('> Note:\n* first\n* second\n\nAfter\n',
                 ('<blockquote>\n  <p>Note:</p>\n  <ul>\n    <li>first</li>\n    <li>second'
                  '</li>\n  </ul>\n</blockquote>\n\n<p>After</p>\n'),
                 id='quote-runs-to-blank-line'),
    pytest.param('Text\n\n    code line\nlazy text\n\nAfter\n',
                 ('<p>Text</p>\n\n<pre><code>code line lazy text\n</code></pre>\n\n'
                  '<p>After</p>\n'),
                 id='code-lazy-line'),
    pytest.param('One line\ntwo lines\n---\n\nSetext\n---\n\nA\n* * *\n',
                 ('<p>One line\ntwo lines\n—</p>\n\n<h2 id="setext">Setext</h2>\n\n<p>A</p>'
                  '\n<hr />\n'),
                 id='setext-one-line'),
    pytest.param('## [Apply here](http://x) & `co de` ![i](i.png)\n',
                 ('<h2 id="apply-here--co-de-"><a href="http://x">Apply here</a> &amp; <code '
                  'class="language-plaintext highlighter-rouge">co de</code> <img src="i.png" '
                  'alt="i" /></h2>\n'),
                 id='header-id-of-text'),
    pytest.param('a[^1] b[^1] c[^1]\n\n[^1]: note\n',
                 ('<p>a<sup id="fnref:1" role="doc-noteref"><a href="#fn:1" class="footnote" '
                  'rel="footnote">1</a></sup> b<sup id="fnref:1:1" role="doc-noteref"><a '
                  'href="#fn:1" class="footnote" rel="footnote">1</a></sup> c<sup id="fnref:1:2"'
                  ' role="doc-noteref"><a href="#fn:1" class="footnote" rel="footnote">1</a>'
                  '</sup></p>\n\n<div class="footnotes" role="doc-endnotes">\n  <ol>\n    '
                  '<li id="fn:1" role="doc-endnote">\n      <p>note\xa0<a href="#fnref:1" '
                  'class="reversefootnote" role="doc-backlink">&#8617;</a>\xa0<a href="#fnref:'
                  '1:1" class="reversefootnote" role="doc-backlink">&#8617;<sup>2</sup></a>'
                  '\xa0<a href="#fnref:1:2" class="reversefootnote" role="doc-backlink">&#8617;'
                  '<sup>3</sup></a></p>\n    </li>\n  </ol>\n</div>\n'),
                 id='footnote-repeats'),
    pytest.param('* x | y\n',
                 ('<ul>\n  <li>\n    <table>\n      <tbody>\n        <tr>\n          <td>x'
                  '</td>\n          <td>y</td>\n        </tr>\n      </tbody>\n    </table>'
                  '\n  </li>\n</ul>\n'),
                 id='list-before-table'),
])
def test_markdown_renders_as_kramdown_does(source: str, kramdown: str) -> None:
    assert _normal(render(source, ".md", ("md",))) == _normal(kramdown)


@pytest.mark.parametrize(("title", "smartified"), [
    ('It\'s a "Title" -- now...', 'It’s a “Title” – now…'),
    ("Data & Analytics: 'Lead'", 'Data &amp; Analytics: ‘Lead’'),
    ("<b>Bold</b> 'move'", '<b>Bold</b> ‘move’'),
])
def test_titles_are_smartified_as_jekyll_feed_prints_them(title: str, smartified: str) -> None:
    # jekyll-feed: `post.title | smartify | strip_html`
    assert smart_title(title) == strip_html(smartified)


def test_typography_leaves_text_without_quotes_or_dashes_alone() -> None:
    text = "Data <analyst> - 9-5 & more. a.b"
    assert smarten(text) is text


def test_a_quote_at_a_run_edge_is_judged_by_what_follows_in_the_source() -> None:
    assert smarten('"', after="*a") == "“"
    assert smarten('"') == "”"
    assert smarten("'bar'", before="\n") == "‘bar’"


def test_repeated_header_ids_are_numbered_as_kramdown_numbers_them() -> None:
    seen: dict[str, int] = {}
    assert [header_id(raw, seen) for raw in ["A b", "A b", "a-b", "A b"]] == [
        "a-b", "a-b-1", "a-b-2", "a-b-3"]


def test_feed_entries_carry_smart_titles_and_text(tmp_path: Path) -> None:
    config = make_site(tmp_path, {
        "2024-05-30-lead.md": post("\"Data & Analytics: 'Lead' -- Now...\"",
                                   body="It's \"great\" -- really...\n"),
    })
    build_site(config)
    xml = (output(config) / "feed.xml").read_text(encoding="utf-8")
    assert ">Data &amp; Analytics: ‘Lead’ – Now…</title>" in xml
    assert "It’s “great” – really…" in xml


def test_list_and_quote_nesting_is_bounded() -> None:
    # each level re-enters the block parser: hostile nesting stops at MAX_DEPTH, as text
    source = "".join("  " * level + "* x\n" for level in range(300))
    rendered = render(source, ".md", ("md",))
    assert rendered.count("<ul>") == MAX_DEPTH
    assert "* x" in rendered
    rendered = render("> " * 300 + "deep\n", ".md", ("md",))
    assert rendered.count("<blockquote>") == MAX_DEPTH


# The site's `kramdown:` settings (config/kramdownconfig.py). The expected HTML is real
# kramdown 2.4.0's with input: GFM, hard_wrap: true, auto_id_prefix: p-, footnote_nr: 3,
# smart_quotes: apos,apos,quot,quot.
SETTINGS = Kramdown(smart_quotes=("'", "'", '"', '"'), auto_id_prefix="p-", footnote_nr=3,
                    hard_wrap=True)


def test_the_sites_kramdown_settings_change_the_rendering() -> None:
    source = "# Hi there\n\nA[^x] \"q\" it's\nnext\n\n[^x]: note\n"
    kramdown = ('<h1 id="p-hi-there">Hi there</h1>\n\n<p>A<sup id="fnref:x" role="doc-noteref">'
                '<a href="#fn:x" class="footnote" rel="footnote">3</a></sup> "q" it\'s<br />\n'
                'next</p>\n\n<div class="footnotes" role="doc-endnotes">\n  <ol start="3">\n'
                '    <li id="fn:x" role="doc-endnote">\n      <p>note\xa0<a href="#fnref:x" '
                'class="reversefootnote" role="doc-backlink">&#8617;</a></p>\n    </li>\n'
                '  </ol>\n</div>\n')
    assert _normal(render(source, ".md", ("md",), SETTINGS)) == _normal(kramdown)
    no_ids = Kramdown(auto_ids=False)
    assert render("# Hi\n", ".md", ("md",), no_ids) == "<h1>Hi</h1>\n"
    assert smart_title("It's \"it\"", SETTINGS) == "It's \"it\""


def _jekyll_site(tmp_path: Path, kramdown: str) -> Path:
    (tmp_path / "_config.yml").write_text("title: Jobs\n" + kramdown, encoding="utf-8")
    return make_site(tmp_path, {
        "2024-05-30-lead.md": post("\"It's a 'Lead'\"", body="It's \"great\"\nnext line\n"),
    }, jekyll_config="_config.yml")


def test_kramdown_settings_are_read_from_the_jekyll_config_and_rerender(
        tmp_path: Path) -> None:
    config = _jekyll_site(tmp_path, "kramdown:\n  smart_quotes: apos,apos,quot,quot\n"
                                    "  hard_wrap: true\n  footnote_nr: 1\n")
    assert config_of(config).site.kramdown == Kramdown(smart_quotes=("'", "'", '"', '"'),
                                                       hard_wrap=True)
    build_site(config)
    entry = parse_feed(output(config) / "feed.xml").entries[0]
    assert entry.title == "It's a 'Lead'"
    assert "It's \"great\"<br />" in entry.content[0].value
    # Jekyll's defaults again: the cached readings and renders are redone
    (tmp_path / "_config.yml").write_text("title: Jobs\n", encoding="utf-8")
    build_site(config)
    entry = parse_feed(output(config) / "feed.xml").entries[0]
    assert entry.title == "It’s a ‘Lead’"
    assert "It’s “great”\nnext line" in entry.content[0].value


@pytest.mark.parametrize(("setting", "line", "message"), [
    ("kramdown:\n  smart_quotes: lsquo,rsquo\n", 3,
     "'kramdown.smart_quotes': 'lsquo,rsquo' is not four quotes kramdown knows"),
    ("kramdown:\n  auto_ids: maybe\n", 3, "'kramdown.auto_ids': 'maybe' is not true or false"),
    ("kramdown:\n  footnote_nr: 0\n", 3,
     "'kramdown.footnote_nr': '0' is not a whole number from 1 to 1,000,000"),
    ("kramdown: GFM\n", 2, "'kramdown' must be a mapping of kramdown's options"),
])
def test_bad_kramdown_settings_are_reported_with_file_and_line(
        tmp_path: Path, setting: str, line: int, message: str) -> None:
    config = _jekyll_site(tmp_path, setting)
    with pytest.raises(ConfigError) as caught:
        config_of(config)
    assert [(p.path, p.line, p.message) for p in caught.value.problems] == [
        (tmp_path / "_config.yml", line, message)]
