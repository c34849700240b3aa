"""Every kind of bad post file: the problem names the file, the line and what is wrong,
and the good posts beside it are still published (in the corpus and in the built feed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import (
    build_site,
    by_path,
    make_site,
    output,
    parse_feed,
    post,
    read_site,
    rejected_by_name,
    run_cli,
    write_posts,
)
from lxml import etree

GOOD = {
    "2019-01-01-good-one.md": post("Good one", tags="[jobs]"),
    "2019-01-02-good-two.md": post("Good two", body="Second good post.\n"),
}


def _site_with(tmp_path: Path, bad: dict[str, str | bytes], **kw: Any) -> Path:
    return make_site(tmp_path, {**GOOD, **bad}, **kw)


def _only_problem(tmp_path: Path, name: str, content: str | bytes):
    """Read a site of the good posts plus one bad file; return the bad file's one problem,
    after checking the good posts were still published, in the corpus and in feed.xml."""
    config = _site_with(tmp_path, {name: content})
    corpus = read_site(config)
    assert sorted(by_path(corpus)) == sorted(GOOD)
    assert [Path(p.path).name for p in corpus.rejected] == [name]
    report = build_site(config)
    assert report.found.count == 2
    assert [Path(p.path).name for p in report.found.rejected] == [name]
    feed = parse_feed(output(config) / "feed.xml")
    assert [e.title for e in feed.entries] == ["Good two", "Good one"]
    problem = corpus.rejected[0]
    assert problem.path == tmp_path / "_posts" / name
    return problem


# --- front matter -----------------------------------------------------------------------

def test_unclosed_front_matter_is_rejected_on_line_1_with_a_hint_to_close_it(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-unclosed.md",
                            "---\ntitle: Never closed\ntags: a\n\nBody text.\n")
    assert problem.line == 1
    assert "front matter opened on line 1 is never closed" in problem.message
    assert problem.hint == "add a line '---' after the last front matter key"


def test_front_matter_closed_by_an_indented_dashes_line_names_that_line(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-indented.md",
                            "---\ntitle: Indented close\ntags: [a]\n ---\nBody.\n")
    assert problem.line == 1
    assert "never closed" in problem.message
    assert problem.hint == "line 4 ' ---' looks meant to close it: remove the spaces"


def test_invalid_yaml_names_the_file_line_of_the_error(tmp_path):
    # line 1 '---', line 2 title, line 3 tags, line 4 the bad one
    problem = _only_problem(tmp_path, "2019-01-05-bad-yaml.md",
                            "---\ntitle: Fine\ntags: [a]\nauthor: Ann: Smith\n---\nBody.\n")
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML: mapping values are not allowed")


def test_invalid_yaml_deeper_in_a_long_front_matter_still_names_its_line(tmp_path):
    front = "".join(f"key{i}: value {i}\n" for i in range(10))  # lines 2-11
    problem = _only_problem(tmp_path, "2019-01-05-bad-yaml.md",
                            f"---\n{front}title: \"unterminated\nnext: x\n---\nBody.\n")
    # the quoted scalar opens on line 12 and the scanner reports where it gave up
    assert problem.line is not None and problem.line >= 12
    assert problem.message.startswith("invalid YAML:")


def test_front_matter_that_is_a_list_is_rejected(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-list.md", "---\n- title\n- tags\n---\nBody.\n")
    assert problem.line == 2
    assert problem.message == "front matter is a list, not 'key: value' lines"


def test_front_matter_that_is_a_string_is_rejected(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-string.md",
                            "---\nJust a sentence\n---\nBody.\n")
    assert problem.line == 2
    assert problem.message == "front matter is a str, not 'key: value' lines"


# --- encodings and line endings ---------------------------------------------------------

def test_non_utf8_byte_is_rejected_with_the_line_and_column_of_the_byte(tmp_path):
    raw = b"---\ntitle: Caf\xc3\xa9 ok\n---\nFirst line.\nSecond caf\xe9 line.\n"
    problem = _only_problem(tmp_path, "2019-01-05-latin1.md", raw)
    assert problem.line == 5
    assert problem.message == "not UTF-8: byte 0xe9 at column 11"
    assert "iconv" in problem.hint


def test_utf8_bom_is_accepted_and_the_front_matter_read(tmp_path):
    config = _site_with(tmp_path, {
        "2019-01-05-bom.md": b"\xef\xbb\xbf---\ntitle: With a BOM\ntags: [x]\n---\nBody.\n"})
    corpus = read_site(config)
    assert corpus.rejected == []
    bom = by_path(corpus)["2019-01-05-bom.md"]
    assert bom.title == "With a BOM"
    assert bom.tags == ("x",)
    build_site(config)
    titles = [e.title for e in parse_feed(output(config) / "feed.xml").entries]
    assert titles == ["With a BOM", "Good two", "Good one"]


def test_crlf_line_endings_are_accepted_with_title_tags_and_first_paragraph_excerpt(tmp_path):
    text = ("---\r\ntitle: Windows post\r\ntags: [ops, remote]\r\n---\r\n"
            "First paragraph\r\ngoes on.\r\n\r\nSecond paragraph.\r\n")
    config = _site_with(tmp_path, {"2019-01-05-crlf.md": text.encode()})
    corpus = read_site(config)
    assert corpus.rejected == []
    crlf = by_path(corpus)["2019-01-05-crlf.md"]
    assert (crlf.title, crlf.tags) == ("Windows post", ("ops", "remote"))
    build_site(config)
    entry = parse_feed(output(config) / "feed.xml").entries[0]
    assert entry.title == "Windows post"
    assert entry.summary == "First paragraph goes on."
    assert "\r" not in entry.content[0].value
    assert [t.term for t in entry.tags] == ["ops", "remote"]


# --- dates and names --------------------------------------------------------------------

def test_front_matter_date_that_does_not_parse_names_the_date_line(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-bad-date.md",
                            "---\ntitle: When\ntags: [a]\ndate: next tuesday\n---\nBody.\n")
    assert problem.line == 4
    assert problem.message.startswith("'next tuesday' is not a date")


def test_file_name_date_that_does_not_exist_is_rejected(tmp_path):
    problem = _only_problem(tmp_path, "2019-02-30-no-such-day.md", post("Thirtieth"))
    assert problem.line is None
    assert problem.message.startswith("the file name's date 2019-02-30 does not exist")


def test_front_matter_date_that_does_not_exist_is_rejected_not_rolled_over(tmp_path):
    problem = _only_problem(tmp_path, "2019-02-01-feb.md",
                            "---\ntitle: Feb\ndate: 2019-02-30\n---\nBody.\n")
    assert problem.line == 3
    assert "is not a real date" in problem.message


def test_file_name_without_dash_after_the_date_is_reported_with_the_fixed_name(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05hello.md", post("No dash"))
    assert problem.message.startswith("no '-' between the date and the title")
    assert problem.hint == "rename it to 2019-01-05-hello.md"


def test_file_name_without_extension_is_reported(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-hello", post("No extension"))
    assert problem.message.startswith("the file name has no extension")
    assert problem.hint == "rename it to 2019-01-05-hello.md"


def test_file_name_without_a_date_is_reported(tmp_path):
    problem = _only_problem(tmp_path, "hello-world.md", post("No date"))
    assert problem.message.startswith("not a post file name (YYYY-MM-DD-title.md)")


def test_empty_file_is_rejected(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-empty.md", "")
    assert problem.line == 1
    assert problem.message == "the file is empty"


def test_whitespace_only_file_is_rejected_as_empty(tmp_path):
    problem = _only_problem(tmp_path, "2019-01-05-blank.md", "\n  \n\t\n")
    assert problem.message == "the file is empty"


# --- size -------------------------------------------------------------------------------

def test_five_megabyte_post_is_published_in_full(tmp_path):
    para = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n\n"
    body = "Opening paragraph.\n\n" + para * (5_000_000 // len(para)) + "THE-END-MARK\n"
    config = _site_with(tmp_path, {"2019-01-05-huge.md": post("Huge", body=body, tags="[big]")})
    assert (tmp_path / "_posts" / "2019-01-05-huge.md").stat().st_size > 5_000_000
    report = build_site(config)
    assert report.found.rejected == []
    assert "feed/by_tag/big.xml" in report.written
    root = etree.fromstring((output(config) / "feed/by_tag/big.xml").read_bytes())
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert root.xpath("a:entry/a:title/text()", namespaces=ns) == ["Huge"]
    content = root.xpath("string(a:entry/a:content)", namespaces=ns)
    assert isinstance(content, str)
    assert content.startswith("<p>Opening paragraph.</p>")
    assert content.rstrip().endswith("<p>THE-END-MARK</p>")
    assert root.xpath("string(a:entry/a:summary)", namespaces=ns) == "Opening paragraph."


# --- titles -----------------------------------------------------------------------------

def test_title_with_line_breaks_warns_and_feeds_show_one_line(tmp_path):
    config = _site_with(tmp_path, {
        "2019-01-05-broken-title.md": '---\ntitle: "Senior\\r\\nEngineer\\nRemote"\n---\nB.\n'})
    corpus = read_site(config)
    assert corpus.rejected == []
    [warning] = corpus.warnings
    assert warning.path.name == "2019-01-05-broken-title.md"
    assert warning.message.startswith("the title has a line break")
    build_site(config)
    for name in ("feed.xml", "feed.rss"):
        entry = parse_feed(output(config) / name).entries[0]
        assert entry.title == "Senior Engineer Remote"


def test_title_with_script_ampersand_and_emoji_is_escaped_and_read_back_exactly(tmp_path):
    config = _site_with(tmp_path, {"2019-01-05-tricky.md": (
        '---\ntitle: "<script>alert(1)</script>Tom & Jerry <b>are</b> hiring 🎉"\ntags: [x]\n'
        "---\nCome <script>alert(2)</script>work & play 🚀 with us.\n")})
    build_site(config)
    for name in ("feed.xml", "feed.rss", "feed/by_tag/x.xml", "feed/by_tag/x.rss"):
        raw = (output(config) / name).read_bytes()
        assert b"<script" not in raw and b"&lt;script" not in raw
        entry = parse_feed(output(config) / name).entries[0]
        assert entry.title == "Tom & Jerry are hiring 🎉"
        assert entry.content[0].value == "<p>Come work &amp; play 🚀 with us.</p>"
        # HTML, as jekyll-feed writes it: the text's '&' escaped, read back as HTML
        assert entry.summary == "Come work &amp; play 🚀 with us."


def test_title_with_html_entity_is_decoded_once(tmp_path):
    config = _site_with(tmp_path, {"2019-01-05-entity.md": post('"R&amp;D lead"')})
    build_site(config)
    assert parse_feed(output(config) / "feed.xml").entries[0].title == "R&D lead"


# --- control characters and CDATA ends --------------------------------------------------

def test_control_characters_and_cdata_end_never_break_the_xml(tmp_path):
    config = _site_with(tmp_path, {"2019-01-05-controls.md": (
        '---\ntitle: "Bell\\x01 tab\\x0b end ]]> here"\ntags: [ctl]\n---\n'
        "Body \x01 with \x0b controls ]]> and \x7f more.\n\nSecond ]]>.\n")})
    corpus = read_site(config)
    assert corpus.rejected == []
    build_site(config)
    names = ("feed.xml", "feed.rss", "feed/by_tag/ctl.xml", "feed/by_tag/ctl.rss")
    for name in names:
        raw = (output(config) / name).read_bytes()
        etree.fromstring(raw)  # raises on anything XML 1.0 cannot carry
        assert b"\x01" not in raw and b"\x0b" not in raw and b"\x7f" not in raw
        entry = parse_feed(output(config) / name).entries[0]
        assert entry.title == "Bell tab end ]]> here"
        # a dropped control character may leave a double space: compare the words
        assert " ".join(entry.summary.split()) == "Body with controls ]]&gt; and more."  # HTML
        assert entry.content[0].value == (
            "<p>Body  with  controls ]]&gt; and  more.</p>\n<p>Second ]]&gt;.</p>")


# --- tags -------------------------------------------------------------------------------

def _tags_of(tmp_path: Path, tags_line: str):
    config = _site_with(tmp_path, {
        "2019-01-05-tagged.md": f"---\ntitle: Tagged\n{tags_line}\n---\nBody.\n"})
    corpus = read_site(config)
    assert corpus.rejected == []
    return by_path(corpus)["2019-01-05-tagged.md"], corpus.warnings


def test_tags_that_is_a_bare_number_gives_no_tags_and_a_warning(tmp_path):
    tagged, warnings = _tags_of(tmp_path, "tags: 2019")
    assert tagged.tags == ()
    [warning] = warnings
    assert warning.line == 3
    assert warning.message == "'tags: 2019' is a number; Jekyll ignores it"
    assert warning.hint == "write tags: ['2019']"


def test_tags_list_with_a_number_keeps_it_as_text_and_warns(tmp_path):
    tagged, warnings = _tags_of(tmp_path, "tags: [2019, x]")
    assert tagged.tags == ("2019", "x")
    [warning] = warnings
    assert (warning.line, warning.message) == (3, "'tags' has numbers (2019); they become text")


def test_tags_null_gives_no_tags_and_no_warning(tmp_path):
    tagged, warnings = _tags_of(tmp_path, "tags:")
    assert tagged.tags == ()
    assert warnings == []


def test_nested_tag_lists_are_flattened_with_a_warning(tmp_path):
    tagged, warnings = _tags_of(tmp_path, "tags: [[a, b], c, [d, [e]]]")
    assert tagged.tags == ("a", "b", "c", "d", "e")
    [warning] = warnings
    assert warning.message == "'tags' has a nested list or mapping; it is flattened"


def test_number_tag_gets_its_own_feed_named_by_the_text(tmp_path):
    config = _site_with(tmp_path, {"2019-01-05-tagged.md": post("Tagged", tags="[2019, x]")})
    build_site(config)
    feed = parse_feed(output(config) / "feed/by_tag/2019.xml")
    assert [e.title for e in feed.entries] == ["Tagged"]


# --- duplicate URLs ---------------------------------------------------------------------

def test_second_post_with_the_same_url_is_rejected_naming_the_first(tmp_path):
    config = _site_with(tmp_path, {
        "2019-01-05-first.md": post("First", permalink="/jobs/same/"),
        "2019-01-06-second.md": post("Second", permalink="/jobs/same/"),
    })
    corpus = read_site(config)
    assert sorted(by_path(corpus)) == sorted([*GOOD, "2019-01-05-first.md"])
    problem = rejected_by_name(corpus)["2019-01-06-second.md"]
    assert problem.message == "its URL /jobs/same/ is already taken by 2019-01-05-first.md"
    build_site(config)
    titles = [e.title for e in parse_feed(output(config) / "feed.xml").entries]
    assert titles == ["First", "Good two", "Good one"]


def test_same_slug_in_two_extensions_collides_and_the_later_path_is_rejected(tmp_path):
    config = _site_with(tmp_path, {
        "2019-01-05-dup.md": post("Markdown one"),
        "2019-01-05-dup.markdown": post("Markdown two"),
    })
    corpus = read_site(config)
    problem = rejected_by_name(corpus)["2019-01-05-dup.md"]
    assert problem.message == ("its URL /2019/01/05/dup.html is already taken by "
                               "2019-01-05-dup.markdown")


def test_many_bad_files_are_all_reported_and_good_ones_still_published(tmp_path):
    config = _site_with(tmp_path, {
        "2019-01-05-empty.md": "",
        "2019-01-06-unclosed.md": "---\ntitle: x\n",
        "2019-01-07-list.md": "---\n- a\n---\n",
        "2019-02-30-no-day.md": post("x"),
    })
    report = build_site(config)
    assert sorted(p.path.name for p in report.found.rejected) == [
        "2019-01-05-empty.md", "2019-01-06-unclosed.md", "2019-01-07-list.md",
        "2019-02-30-no-day.md"]
    titles = [e.title for e in parse_feed(output(config) / "feed.xml").entries]
    assert titles == ["Good two", "Good one"]
    assert [e.title for e in parse_feed(output(config) / "feed/by_tag/jobs.xml").entries] == [
        "Good one"]


def test_link_to_no_published_post_warns_at_its_line_and_the_post_is_published(tmp_path):
    """Jekyll stops the whole build on a `{% post_url %}` it cannot find; we publish the post
    with the link left empty, and say which file, which line and which name."""
    config = _site_with(tmp_path, {
        "2019-01-03-draft.md": post("Draft", published="false"),
        "2019-01-05-links.md": post("Links", body=(
            "Fine: [one]({% post_url 2019-01-01-good-one %})\n\n"
            "Typo: [two]({% post_url 2019-01-02-good-tow %})\n"
            "Draft: [d]({% link _posts/2019-01-03-draft.md %})\n"))})
    expected = [(6, "2019-01-02-good-tow"), (7, "2019-01-03-draft")]
    corpus = read_site(config)
    assert [(w.path.name, w.line) for w in corpus.warnings] == [
        ("2019-01-05-links.md", line) for line, _ in expected]
    for warning, (_, name) in zip(corpus.warnings, expected, strict=True):
        assert warning.message == (f"the link to '{name}' names no published post, so it is "
                                   "left empty (Jekyll stops the whole build on it)")
    report = build_site(config)
    assert report.found.warnings == corpus.warnings
    entry = parse_feed(output(config) / "feed.xml").entries[0]
    assert entry.title == "Links"
    assert 'href="https://jobs.example.org/2019/01/01/good-one.html"' in entry.content[0].value
    code, out, _ = run_cli(["--config", str(config), "check"])
    assert code == 1
    assert f"warning: {tmp_path / '_posts' / '2019-01-05-links.md'}:6: the link to " \
        "'2019-01-02-good-tow'" in out
    write_posts(tmp_path, {"2019-01-03-draft.md": post("Draft")})  # published now
    assert [w.line for w in build_site(config).found.warnings] == [6]


def test_summary_has_single_spaces_where_control_characters_were(tmp_path):
    config = _site_with(tmp_path, {"2019-01-05-controls.md": post(
        "Controls", body="Body \x01 with \x0b controls.\n")})
    build_site(config)
    assert parse_feed(output(config) / "feed.xml").entries[0].summary == "Body with controls."
