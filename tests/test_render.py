"""The digest's bodies and subject: real Jinja, real css-inline, the built-in templates.

What each recipient reads is checked through `Layout.personalise` (the bodies exactly as
they go into the message); test_message.py checks the message around them.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.config import Site
from digest.edition.layout import (
    DASH,
    DigestPost,
    Edition,
    Layout,
    MailSettings,
    Recipient,
    default_list_id,
    format_period,
)
from digest.errors import ConfigError, MessageError

TZ = ZoneInfo("America/New_York")
SITE = Site(url="https://jobs.example.org", title="Jobs Board", timezone="America/New_York",
            lang="en-US")
ZOE = Recipient("zoe@example.net", "Zoë Ñúñez", "https://jobs.example.org/digest/u?t=AbC-1",
                "https://jobs.example.org/digest/p?t=AbC-2")
NO_WEB = Recipient("sam@example.net")


def post(title: str = "Data Analyst", *, day: int = 3, hour: int = 10,
         tags: tuple[str, ...] = ("analytics",), categories: tuple[str, ...] = (),
         excerpt: str = "Join our team.", excerpt_html: str | None = None,
         tz: ZoneInfo = TZ) -> DigestPost:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "post"
    return DigestPost(title, f"https://jobs.example.org/2024/06/{day:02d}/{slug}/",
                      datetime(2024, 6, day, hour, tzinfo=tz), tags, categories, excerpt,
                      excerpt_html if excerpt_html is not None
                      else f"<p>{html.escape(excerpt)}</p>")


def edition(*posts: DigestPost, followed: tuple[str, ...] | None = None,
            archive_url: str | None = "https://jobs.example.org/digest/2024-06-08/") -> Edition:
    return Edition(datetime(2024, 6, 1, 9, tzinfo=TZ), datetime(2024, 6, 8, 9, tzinfo=TZ),
                   posts or (post(),), followed, archive_url)


def renderer(templates: Path | None = None, site: Site = SITE) -> Layout:
    return Layout(MailSettings(site, "Jobs Board <jobs@example.org>",
                                 default_list_id("jobs@example.org", site),
                                 "unsubscribe@example.org", templates, ("job", "jobs")))


def bodies(ed: Edition, recipient: Recipient = ZOE,
           templates: Path | None = None) -> tuple[str, str]:
    r = renderer(templates)
    return r.personalise(r.edition(ed), recipient)


def subject(ed: Edition) -> str:
    return renderer().edition(ed).subject


def visible(page: str) -> str:
    """The HTML's text as a reader sees it: tags gone, entities decoded, spaces collapsed."""
    page = re.sub(r"<(style|title)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# subject ------------------------------------------------------------------------------------

def test_subject_names_the_followed_tags_the_edition_has_most_posts_first() -> None:
    ed = edition(post("A", tags=("union",)), post("B", tags=("analytics", "union")),
                 post("C", tags=("analytics",)), post("D", tags=("union",)),
                 followed=("analytics", "union", "remote"))
    assert subject(ed) == "4 new jobs in union, analytics"


def test_subject_names_three_tags_then_counts_the_rest() -> None:
    followed = ("a", "b", "c", "d", "e")
    ed = edition(*(post(f"P{i}", tags=followed[:5 - i]) for i in range(5)), followed=followed)
    assert subject(ed) == "5 new jobs in a, b, c and 2 more tags"


def test_subject_for_every_post_names_the_commonest_tags() -> None:
    ed = edition(post("A", tags=("remote", "union")), post("B", tags=("remote",)),
                 post("C", tags=("zeta", "union")), post("D", tags=("remote", "alpha")))
    assert subject(ed) == "4 new jobs in remote, union, alpha and 1 more tag"


def test_subject_uses_the_singular_noun_for_one_post() -> None:
    assert subject(edition(post(tags=("union",)), followed=("union",))) == "1 new job in union"


def test_subject_is_one_line_of_at_most_150_characters_whatever_the_tags() -> None:
    hostile = ("line\r\nBcc: evil@example.com", "nul\x00tab\tdel\x7f", "x" * 300)
    text = subject(edition(post(tags=hostile), followed=hostile))
    assert len(text) <= 150
    assert not re.search(r"[\x00-\x1f\x7f]", text)
    assert text.startswith("1 new job in line Bcc: evil@example.com, nul tab del")


# bodies -------------------------------------------------------------------------------------

def test_text_part_says_what_the_html_part_says() -> None:
    posts = (post("Director of Data & Analytics", day=5, tags=("union", "analytics"),
                  excerpt="Lead a team of four.\n\nSalary: $110,000."),
             post("Analista de datos — Campaña", day=4, tags=("données",),
                  categories=("Campaigns",), excerpt="Trabajo remoto."),
             post("Voter File Engineer", day=2, tags=(), excerpt="Python and SQL."))
    text, page = bodies(edition(*posts))
    seen = visible(page)
    for p in posts:
        for thing in (p.title, p.url, f"{p.date.day} June 2024", *p.tags, *p.categories,
                      *p.excerpt.split("\n\n")):
            assert thing in text, thing
            assert thing in seen or f'href="{html.escape(thing)}"' in page, thing
    for link in (ZOE.unsubscribe_url, ZOE.preferences_url,
                 "https://jobs.example.org/digest/2024-06-08/"):
        assert link is not None and link in text
        assert f'href="{html.escape(link)}"' in page
    for words in ("Hi Zoë Ñúñez,", f"Here are the 3 new jobs from 1{DASH}8 June 2024",
                  "zoe@example.net subscribed to the Jobs Board digest", "Unsubscribe",
                  "Manage your tags", "View this digest in your browser"):
        assert words in text
        assert words in seen


def test_posts_are_listed_newest_first_in_both_parts() -> None:
    older, newest, middle = post("Older", day=2), post("Newest", day=6), post("Middle", day=4)
    text, page = bodies(edition(older, newest, middle))
    for body in (text, visible(page)):
        assert body.index("Newest") < body.index("Middle") < body.index("Older")


def test_post_dates_are_shown_in_the_site_timezone() -> None:
    late_utc = post("Night Shift", day=3, hour=2, tz=ZoneInfo("UTC"))  # 2 June, 22:00 in NY
    text, page = bodies(edition(late_utc))
    assert "2 June 2024" in text
    assert "2 June 2024" in visible(page)
    assert "3 June 2024" not in text


def test_titles_and_tags_are_escaped_but_the_sanitised_excerpt_html_is_kept() -> None:
    ed = edition(post("<script>alert(1)</script> & Co", tags=("<b>bold</b>",),
                      excerpt_html='<p>We use <strong>Python</strong> &amp; '
                                   '<a href="https://example.org/x">SQL</a>.</p>'))
    text, page = bodies(ed)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert re.search(r"<strong[^>]*>Python</strong>", page)
    assert "<script>alert(1)</script> & Co" in text


def test_css_is_inlined_and_only_media_queries_stay_in_the_style_block() -> None:
    _text, page = bodies(edition())
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style
    rules = style.group(1)
    assert "@media (max-width: 620px)" in rules
    assert "@media (prefers-color-scheme: dark)" in rules
    assert ".card {" not in re.sub(r"@media[^{]*\{(?:[^{}]*\{[^}]*\})*\s*\}", "", rules)
    assert re.search(r'<td class="card" style="[^"]*background-color: ?#ffffff', page)
    assert '<meta name="color-scheme" content="light dark">' in page


def test_recipient_values_are_escaped_in_html_and_left_as_they_are_in_text() -> None:
    tom = Recipient("tom@example.net", 'Tom & <Jerry> "TJ"',
                    "https://jobs.example.org/u?t=1&x='2'", None)
    text, page = bodies(edition(), tom)
    assert 'Hi Tom & <Jerry> "TJ",' in text
    assert "Hi Tom &amp; &lt;Jerry&gt; &quot;TJ&quot;," in page
    assert "Unsubscribe: https://jobs.example.org/u?t=1&x='2'" in text
    assert 'href="https://jobs.example.org/u?t=1&amp;x=&#x27;2&#x27;"' in page


def test_control_characters_in_post_fields_and_names_never_reach_the_bodies() -> None:
    nasty = "Bad\x00 title\r\nwith\x1b[31m escapes\x85 and\u2028 separators"
    ed = edition(post(nasty, tags=("t\x00ag\nX",), excerpt=f"one\x00\r\ntwo\x0b{nasty}",
                      excerpt_html=f"<p>{html.escape(nasty)}</p>"), followed=("t\x00ag\nX",))
    text, page = bodies(ed, Recipient("a@example.net", "Eve\r\nBcc: x@example.com\x00"))
    for body in (text, page):
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", body)
    assert "Bad title with [31m escapes and separators" in text
    assert "Hi Eve Bcc: x@example.com," in text
    assert "digest for t ag X." in text


def test_without_a_web_front_it_says_how_to_unsubscribe_by_mail() -> None:
    text, page = bodies(edition(archive_url=None), NO_WEB)
    for body in (text, visible(page)):
        assert 'reply to this email with the word "unsubscribe"' in body
        assert "unsubscribe@example.org" in body
        assert "Manage your tags" not in body
        assert "in your browser" not in body
        assert "Hi " not in body
    assert 'href="mailto:unsubscribe@example.org?subject=unsubscribe"' in page


def test_followed_tags_are_named_with_their_counts() -> None:
    ed = edition(post("A", tags=("union",)), post("B", tags=("union", "analytics")),
                 followed=("analytics", "union"))
    text, page = bodies(ed)
    for body in (text, visible(page)):
        assert "In this digest: union (2), analytics (1)" in body
        assert "digest for analytics, union." in body


def test_groups_hold_each_named_tag_with_its_posts_and_the_untagged_last(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text(
        "{% for tag, posts in groups %}{{ tag }}:{{ posts | map(attribute='title')"
        " | join('+') }};{% endfor %}", encoding="utf-8")
    ed = edition(post("A", day=6, tags=("union",)), post("B", day=5, tags=("remote", "union")),
                 post("C", day=4, tags=()))
    assert renderer(tmp_path).edition(ed).subject == "union:A+B;remote:B;None:C;"


def test_long_excerpts_are_wrapped_in_the_text_part_but_urls_are_not_broken() -> None:
    url = "https://jobs.example.org/" + "long-path/" * 12
    words = "Organise data for the members of our union across the state. " * 6
    text, _page = bodies(edition(post(excerpt=f"{words}\n\nApply at {url} today.")))
    assert all(len(line) <= 72 or url in line for line in text.splitlines()
               if "Organise" in line or "members" in line or url in line)
    assert url in text


def test_period_is_written_as_short_as_is_clear() -> None:
    day = datetime(2024, 1, 8, tzinfo=TZ)
    assert format_period(day, day.replace(day=14)) == f"8{DASH}14 January 2024"
    assert format_period(day.replace(day=29), day.replace(month=2, day=4)) \
        == f"29 January {DASH} 4 February 2024"
    assert format_period(day.replace(year=2023, month=12, day=28), day) \
        == f"28 December 2023 {DASH} 8 January 2024"
    assert format_period(day, day.replace(hour=20)) == "8 January 2024"


# one rendering per edition ------------------------------------------------------------------

def test_an_edition_is_rendered_once_for_all_recipients_with_the_same_kind_of_values() -> None:
    r = renderer()
    rendered = r.edition(edition())
    for i in range(50):
        r.message(rendered, Recipient(f"u{i}@example.net", f"User {i}", f"https://x.org/u/{i}",
                                      f"https://x.org/p/{i}"),
                  message_id=f"<{i}@example.org>", date=datetime.now(TZ))
    assert len(rendered.variants) == 1
    r.message(rendered, Recipient("anon@example.net"), message_id="<a@example.org>",
              date=datetime.now(TZ))
    assert len(rendered.variants) == 2


def test_an_edition_is_checked_for_the_first_recipient_a_send_gives_it_to() -> None:
    r = renderer()
    anon = Recipient("anon@example.net", None, "https://x.org/u/1", "https://x.org/p/1")
    rendered = r.edition(edition(), anon)
    assert len(rendered.variants) == 1  # for anon's kind alone: no copy with every value
    for i in range(3):
        r.message(rendered, Recipient(f"u{i}@example.net", None, f"https://x.org/u/{i}",
                                      f"https://x.org/p/{i}"),
                  message_id=f"<{i}@example.org>", date=datetime.now(TZ))
    assert len(rendered.variants) == 1
    assert "Hi {recipient.name}," in rendered.text  # a preview still shows every value
    assert len(rendered.variants) == 2


def test_a_template_error_shows_when_the_edition_is_laid_out_for_a_send(
        tmp_path: Path) -> None:
    (tmp_path / "digest.txt.j2").write_text("{{ posts[0].nope }}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="nope"):
        renderer(tmp_path).edition(edition(), NO_WEB)


def test_an_edition_shows_where_personal_values_go_for_previews() -> None:
    rendered = renderer().edition(edition())
    assert "Hi {recipient.name}," in rendered.text
    assert "Unsubscribe: {recipient.unsubscribe_url}" in rendered.text
    assert 'href="{recipient.preferences_url}"' in rendered.html
    assert "dgst" not in rendered.text + rendered.html


def test_each_recipient_gets_their_own_values_from_one_rendering() -> None:
    r = renderer()
    rendered = r.edition(edition())
    people = [Recipient(f"u{i}@example.net", f"Person {i}", f"https://x.org/u/{i}",
                        f"https://x.org/p/{i}") for i in range(3)]
    for person in people:
        text, page = r.personalise(rendered, person)
        assert f"Hi Person {person.email[1]}," in text
        assert person.email in visible(page)
        others = [p for p in people if p is not person]
        assert not any(o.email in text or o.email in page for o in others)


# templates ----------------------------------------------------------------------------------

def test_an_override_folder_replaces_one_template_and_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text("{{ site.title }} weekly: {{ count }} {{ noun }}",
                                             encoding="utf-8")
    r = renderer(tmp_path)
    rendered = r.edition(edition())
    assert rendered.subject == "Jobs Board weekly: 1 job"
    _text, page = r.personalise(rendered, ZOE)
    assert "Read the full job" in page


@pytest.mark.parametrize(("written", "sent"), [
    ("Hi  \t\n\n\n\n{{ count }} new\r\nbye \n\n", "Hi\n\n1 new\nbye\n"),
    ("\n\nHi\n\n{{ count }}\rnew\n", "Hi\n\n1\nnew\n"),
    ("Hi\n", "Hi\n"),
])
def test_the_text_part_loses_trailing_spaces_and_runs_of_blank_lines(
        tmp_path: Path, written: str, sent: str) -> None:
    (tmp_path / "digest.txt.j2").write_bytes(written.encode())
    text, _page = bodies(edition(), templates=tmp_path)
    assert text == sent


def test_a_template_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "digest.html.j2"
    broken.write_text("<p>\n{{ count }}\n{% for post in posts %}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        renderer(tmp_path)
    problem = caught.value.problems[0]
    assert problem.path == broken
    assert problem.line == 3
    assert "syntax" in problem.message


def test_an_unknown_variable_in_a_template_names_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "digest.txt.j2"
    broken.write_text("{{ count }}\n{{ site.titel }}\n", encoding="utf-8")
    r = renderer(tmp_path)
    with pytest.raises(ConfigError) as caught:
        r.edition(edition())
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == (broken, 2)
    assert "titel" in problem.message


def test_a_python_error_in_a_template_names_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "subject.txt.j2"
    broken.write_text("{{ count }} new\n{{ count // 0 }}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        renderer(tmp_path).edition(edition())
    assert (caught.value.problems[0].path, caught.value.problems[0].line) == (broken, 2)


@pytest.mark.parametrize("depth", [200, 201])
def test_a_template_that_nests_too_deep_for_the_css_inliner_is_refused(tmp_path: Path,
                                                                      depth: int) -> None:
    """Posts come at most MAX_DEPTH deep; the page around them may take as much again,
    no more (css-inline crashes the process on deep enough nesting)."""
    deep = tmp_path / "digest.html.j2"
    deep.write_text(f"{{% for i in range({depth}) %}}<div>\n{{% endfor %}}"
                    "{{ recipient.email }}\n"
                    f"{{% for i in range({depth}) %}}</div>\n{{% endfor %}}", encoding="utf-8")
    if depth <= 200:
        _text, page = bodies(edition(), templates=tmp_path)
        assert page.count("<div>") == depth
        return
    with pytest.raises(ConfigError, match="nests elements more than 100 deep") as caught:
        renderer(tmp_path).edition(edition())
    assert caught.value.problems[0].path == deep


def test_an_archive_link_that_is_not_a_plain_url_is_refused() -> None:
    with pytest.raises(MessageError):
        renderer().edition(edition(archive_url="https://x.example/a\r\nInjected line"))


def test_the_subject_template_cannot_use_recipient_values(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text("Hi {{ recipient.name }}", encoding="utf-8")
    with pytest.raises(ConfigError, match="recipient"):
        renderer(tmp_path).edition(edition())


def test_an_edition_without_posts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one post"):
        renderer().edition(Edition(datetime(2024, 6, 1, tzinfo=TZ),
                                   datetime(2024, 6, 8, tzinfo=TZ), (), None, None))


def test_default_list_id_sits_under_the_senders_domain() -> None:
    assert default_list_id("Jobs <jobs@Example.org>", SITE) == "Jobs Board <digest.example.org>"
    assert default_list_id("nobody", SITE) == "Jobs Board <digest.jobs.example.org>"
