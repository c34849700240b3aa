"""The subscribers file: good entries served exactly, every bad one skipped with its line and
fix while the others still go out, and a file that cannot be used refused as a whole."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import Problem, SubscribersUnreadable
from digest.subscribers.load import (
    Packed,
    Subscriber,
    SubscriberList,
    _Seen,
    load_subscribers,
    parse_subscribers,
)

KNOWN = ("union", "analytics", "internship", "remote", "Data Science")


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "subscribers.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def _load(tmp_path: Path, text: str | bytes, known: tuple[str, ...] = KNOWN) -> SubscriberList:
    path = _write(tmp_path, text)
    result = load_subscribers(path, known)
    for problem in (*result.problems, *result.warnings):
        assert problem.path == path
    return result


def _emails(result: SubscriberList) -> list[str]:
    return [s.email for s in result.subscribers]


def _problems(result: SubscriberList) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.message, p.hint) for p in result.problems]


def _unreadable(path: Path) -> Problem:
    with pytest.raises(SubscribersUnreadable) as caught:
        load_subscribers(path, KNOWN)
    assert caught.value.problem.path == path
    assert str(path) in str(caught.value)
    return caught.value.problem


GOOD = """\
# who gets the weekly digest
- email: ana@example.org
  name: Ana Gómez
  tags: [union, analytics]
- email: bob@bücher.de
  exclude_tags: [internship]

- email: carol@example.com
"""


def test_good_file_is_served_exactly_in_file_order(tmp_path):
    result = _load(tmp_path, GOOD)
    assert result == SubscriberList(
        subscribers=(
            Subscriber("ana@example.org", "Ana Gómez", ("union", "analytics"), (), line=2),
            Subscriber("bob@xn--bcher-kva.de", None, None, ("internship",), line=5),
            Subscriber("carol@example.com", None, None, (), line=8),
        ),
        problems=(),
        warnings=(),
    )


def test_idn_domain_is_sent_as_punycode_and_keyed_lower_case(tmp_path):
    [bob] = _load(tmp_path, "- email: Bob@BÜCHER.de\n").subscribers
    assert bob.email == "Bob@xn--bcher-kva.de"
    assert bob.email.isascii()
    assert bob.key == "bob@xn--bcher-kva.de"


def test_idn_domain_written_either_way_is_one_subscriber(tmp_path):
    result = _load(tmp_path, "- email: bob@bücher.de\n- email: bob@xn--bcher-kva.de\n")
    assert _emails(result) == ["bob@xn--bcher-kva.de"]
    assert _problems(result) == [(2, "'bob@xn--bcher-kva.de' is already subscribed at line 1",
                                  "remove one of the two entries")]


def test_non_ascii_local_part_is_skipped_because_it_needs_smtputf8(tmp_path):
    result = _load(tmp_path, "- email: ana@example.org\n- email: jörg@example.org\n"
                             "- email: carol@example.com\n")
    assert _emails(result) == ["ana@example.org", "carol@example.com"]
    [(line, message, hint)] = _problems(result)
    assert line == 2
    assert "'jörg@example.org'" in message
    assert "SMTPUTF8" in message
    assert hint == "ask the subscriber for an ASCII address, or remove the entry"


def test_bad_address_is_skipped_at_its_email_line_and_the_others_are_kept(tmp_path):
    text = ("- email: ana@example.org\n"
            "- name: Bob\n"
            "  email: bob@@example.org\n"
            "- email: carol@example.com\n")
    result = _load(tmp_path, text)
    assert _emails(result) == ["ana@example.org", "carol@example.com"]
    [(line, message, hint)] = _problems(result)
    assert line == 3
    assert message.startswith("invalid address 'bob@@example.org': ")
    assert "@" in message.split(": ", 1)[1]  # email-validator's reason follows
    assert hint == "correct the address, or remove the entry"


def test_address_with_a_display_name_says_to_move_the_name(tmp_path):
    result = _load(tmp_path, "- email: Ana <ana@example.org>\n")
    assert result.subscribers == ()
    [(line, message, hint)] = _problems(result)
    assert (line, hint) == (1, "write only the address here; put the name under 'name:'")
    assert message.startswith("invalid address 'Ana <ana@example.org>': A display name")


def test_surrounding_spaces_in_a_quoted_address_are_ignored(tmp_path):
    assert _emails(_load(tmp_path, '- email: " ana@example.org "\n')) == ["ana@example.org"]


def test_duplicate_differing_in_case_is_skipped_naming_both_lines(tmp_path):
    text = ("- email: ana@example.org\n"
            "  tags: [union]\n"
            "- email: carol@example.com\n"
            "- email: ANA@Example.ORG\n"
            "  tags: [remote]\n")
    result = _load(tmp_path, text)
    assert [(s.email, s.tags) for s in result.subscribers] == [
        ("ana@example.org", ("union",)), ("carol@example.com", None)]
    assert _problems(result) == [(4, "'ANA@Example.ORG' is already subscribed at line 1",
                                  "remove one of the two entries")]


def test_misspelt_tags_key_skips_the_entry_with_did_you_mean(tmp_path):
    text = ("- email: ana@example.org\n"
            "  tag: [union]\n"
            "- email: bob@example.org\n"
            "  name: Bob\n"
            "  exlude_tags: internship\n"
            "- email: carol@example.com\n")
    result = _load(tmp_path, text)
    assert _emails(result) == ["carol@example.com"]
    assert _problems(result) == [
        (2, "unknown key 'tag'", "did you mean 'tags'?"),
        (5, "unknown key 'exlude_tags'", "did you mean 'exclude_tags'?"),
    ]


def test_unrelated_unknown_key_lists_the_allowed_keys(tmp_path):
    result = _load(tmp_path, "- email: ana@example.org\n  zzz: 1\n")
    assert _problems(result) == [
        (2, "unknown key 'zzz'", "allowed: email, exclude_tags, name, tags")]


def test_every_problem_in_one_entry_is_reported_at_once(tmp_path):
    text = "- email: nobody\n  name: 42\n  tags: {a: 1}\n"
    result = _load(tmp_path, text)
    assert result.subscribers == ()
    assert [(line, message.split(":")[0]) for line, message, _ in _problems(result)] == [
        (1, "invalid address 'nobody'"),
        (2, "'name' must be text, not a number"),
        (3, "'tags' must be a list or a text of tags, not a mapping"),
    ]


def test_unknown_tag_is_warned_with_did_you_mean_and_still_served(tmp_path):
    text = ("- email: ana@example.org\n"
            "  tags:\n"
            "    - union\n"
            "    - analitycs\n"
            "- email: bob@example.org\n"
            "  exclude_tags: [Analitycs]\n"
            "- email: carol@example.com\n"
            "  tags: [zzzz]\n")
    result = _load(tmp_path, text)
    assert _emails(result) == ["ana@example.org", "bob@example.org", "carol@example.com"]
    assert result.problems == ()
    assert [(w.line, w.message, w.hint) for w in result.warnings] == [
        (2, "no post has the tag 'analitycs' (used by 2 entries, still served)",
         "did you mean 'analytics'?"),
        (8, "no post has the tag 'zzzz' (used by 1 entry, still served)",
         "check the spelling; it may simply have no posts yet"),
    ]


def test_known_tags_match_whatever_their_case(tmp_path):
    result = _load(tmp_path, "- email: ana@example.org\n  tags: [UNION, data science]\n")
    assert result.warnings == ()
    assert result.subscribers[0].tags == ("UNION", "data science")


@pytest.mark.parametrize("written", ["union, analytics", "union analytics",
                                     "union,analytics", " union ,  analytics, "])
def test_tags_may_be_one_string_separated_by_commas_or_spaces(tmp_path, written):
    [ana] = _load(tmp_path, f"- email: ana@example.org\n  tags: '{written}'\n").subscribers
    assert ana.tags == ("union", "analytics")


def test_single_string_tag_and_exclude_tags_forms(tmp_path):
    text = "- email: ana@example.org\n  tags: union\n  exclude_tags: internship remote\n"
    [ana] = _load(tmp_path, text).subscribers
    assert (ana.tags, ana.exclude_tags) == (("union",), ("internship", "remote"))


def test_numbers_and_booleans_as_tags_become_text_as_jekyll_writes_them(tmp_path):
    text = "- email: ana@example.org\n  tags: [2024, 1.5, true]\n"
    [ana] = _load(tmp_path, text, known=("2024", "1.5", "true")).subscribers
    assert ana.tags == ("2024", "1.5", "true")
    assert ana.wants(["2024"])


def test_tags_repeated_in_other_case_are_kept_once(tmp_path):
    [ana] = _load(tmp_path, "- email: ana@example.org\n  tags: [union, Union, UNION]\n") \
        .subscribers
    assert ana.tags == ("union",)


@pytest.mark.parametrize("written", ["[]", "''", ""])
def test_empty_tags_is_a_problem_because_it_would_mean_no_posts(tmp_path, written):
    text = f"- email: carol@example.com\n- email: ana@example.org\n  tags: {written}\n"
    result = _load(tmp_path, text)
    assert _emails(result) == ["carol@example.com"]
    assert _problems(result) == [(3, "'tags' is empty, so this entry would get no posts",
                                  "remove 'tags' to get every post, or remove the entry")]


def test_empty_exclude_tags_excludes_nothing(tmp_path):
    [ana] = _load(tmp_path, "- email: ana@example.org\n  exclude_tags: []\n").subscribers
    assert (ana.tags, ana.exclude_tags) == (None, ())


def test_tags_all_excluded_is_a_problem_because_it_would_mean_no_posts(tmp_path):
    text = "- email: ana@example.org\n  tags: [union]\n  exclude_tags: [Union, remote]\n"
    result = _load(tmp_path, text)
    assert result.subscribers == ()
    assert [(line, hint) for line, _, hint in _problems(result)] == [
        (3, "remove those tags from 'exclude_tags'")]


def test_nested_list_in_tags_is_a_problem(tmp_path):
    result = _load(tmp_path, "- email: ana@example.org\n  tags: [union, [remote]]\n")
    assert _problems(result) == [(2, "'tags' has a list inside", "list each tag as plain text")]


@pytest.mark.parametrize(("written", "code"), [
    (r'"Ana\r\nBcc: victim@example.org"', "U+000D"),
    (r'"Ana\nGómez"', "U+000A"),
    (r'"Ana\0"', "U+0000"),
    (r'"Ana\u2028Gómez"', "U+2028"),
    (r'"Ana\x85"', "U+0085"),
])
def test_name_with_line_breaks_or_control_characters_is_skipped(tmp_path, written, code):
    text = f"- email: carol@example.com\n- email: ana@example.org\n  name: {written}\n"
    result = _load(tmp_path, text)
    assert _emails(result) == ["carol@example.com"]
    assert _problems(result) == [(3, f"'name' contains the control character {code}",
                                  "write the name on one line, without control characters")]


def test_name_folded_by_yaml_onto_one_line_is_fine(tmp_path):
    text = "- email: ana@example.org\n  name: >-\n    Ana\n    Gómez\n"
    assert _load(tmp_path, text).subscribers[0].name == "Ana Gómez"


def test_blank_name_is_no_name(tmp_path):
    [ana] = _load(tmp_path, "- email: ana@example.org\n  name: '  '\n").subscribers
    assert ana.name is None


def test_entries_that_are_not_mappings_are_skipped_with_the_form_to_use(tmp_path):
    text = ("- ana@example.org\n"
            "-\n"
            "- 42\n"
            "- email: carol@example.com\n"
            "- name: Dan\n"
            "- email: [a@example.org, b@example.org]\n")
    result = _load(tmp_path, text)
    assert _emails(result) == ["carol@example.com"]
    assert _problems(result) == [
        (1, "entry 'ana@example.org' has no 'email:' key",
         "write it as '- email: ana@example.org'"),
        (2, "empty entry", "remove the '-', or add 'email: ...' after it"),
        (3, "entry is a number, not a mapping",
         "write each entry as '- email: ...' with optional name, tags, exclude_tags"),
        (5, "no 'email' in this entry", "add 'email: someone@example.org'"),
        (6, "'email' must be one address, not a list", "write one address per entry"),
    ]


def test_lines_are_right_with_windows_line_endings_and_a_bom(tmp_path):
    text = "\ufeff# list\r\n- email: ana@example.org\r\n- email: bad@\r\n"
    result = _load(tmp_path, text.encode("utf-8"))
    assert _emails(result) == ["ana@example.org"]
    assert result.subscribers[0].line == 2
    assert [line for line, _, _ in _problems(result)] == [3]


def test_top_level_mapping_is_unreadable_at_its_line(tmp_path):
    path = _write(tmp_path, "# subscribers\nsubscribers:\n  - email: ana@example.org\n")
    problem = _unreadable(path)
    assert (problem.line, problem.message) == (
        2, "the file must be a list of subscribers, not a mapping")
    assert "- email:" in problem.hint


def test_invalid_yaml_is_unreadable_at_the_line_of_the_error(tmp_path):
    path = _write(tmp_path, "- email: ana@example.org\n- email: bob@example.org\n"
                            "  tags: [union\n- email: carol@example.com\n")
    problem = _unreadable(path)
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML: ")


def test_two_yaml_documents_are_unreadable(tmp_path):
    path = _write(tmp_path, "- email: ana@example.org\n---\n- email: bob@example.org\n")
    assert _unreadable(path).line == 2


def test_missing_file_is_unreadable(tmp_path):
    problem = _unreadable(tmp_path / "nope.yaml")
    assert (problem.line, problem.message) == (None, "subscribers file not found")
    assert problem.hint == "check 'subscribers:' in config.yaml"


def test_folder_instead_of_file_is_unreadable(tmp_path):
    assert _unreadable(tmp_path).message.startswith("cannot read: ")


def test_non_utf8_file_is_unreadable_at_the_line_of_the_bad_byte(tmp_path):
    path = _write(tmp_path, "- email: ana@example.org\n- email: b@example.org\n"
                            "  name: Jos\xe9\n".encode("latin-1"))
    problem = _unreadable(path)
    assert (problem.line, problem.message, problem.hint) == (
        3, "not UTF-8: byte 0xe9 cannot be decoded", "save the file as UTF-8")


@pytest.mark.parametrize("text", ["", "# nobody yet\n", "[]\n"])
def test_file_without_entries_serves_nobody_with_a_warning(tmp_path, text):
    result = _load(tmp_path, text)
    assert (result.subscribers, result.problems) == ((), ())
    assert [w.message for w in result.warnings] == ["no subscribers in the file"]


def test_parse_subscribers_needs_no_file(tmp_path):
    missing = tmp_path / "never-written.yaml"
    result = parse_subscribers(missing, "- email: ana@example.org\n", KNOWN)
    assert _emails(result) == ["ana@example.org"]
    assert not missing.exists()


def test_wants_everything_when_tags_are_absent():
    carol = Subscriber("carol@example.com", None, None)
    assert carol.wants(["union"])
    assert carol.wants([])


def test_wants_only_posts_with_one_of_its_tags():
    ana = Subscriber("ana@example.org", None, ("union", "analytics"))
    assert ana.wants(("jobs", "analytics"))
    assert not ana.wants(("jobs",))
    assert not ana.wants(())


def test_wants_matches_tags_casefolded():
    ana = Subscriber("ana@example.org", None, ("Straße",))
    assert ana.wants(["STRASSE"])
    assert ana.wants(iter(["strasse"]))
    bob = Subscriber("bob@example.org", None, ("STRASSE",), ("ΣΊΣΥΦΟΣ",))
    assert bob.wants(["Straße"])
    assert not bob.wants(["Straße", "σίσυφος"])


def test_exclusion_wins_over_a_wanted_tag_and_over_everything():
    ana = Subscriber("ana@example.org", None, ("union",), ("Internship",))
    bob = Subscriber("bob@example.org", None, None, ("internship",))
    assert not ana.wants(["union", "INTERNSHIP"])
    assert ana.wants(["union"])
    assert not bob.wants(["internship"])
    assert bob.wants(["union"])
    assert bob.wants([])


def test_subscribers_compare_by_their_fields_only():
    assert Subscriber("a@example.org", None, ("x",)) == Subscriber("a@example.org", None, ("x",))
    twins = {Subscriber("a@example.org", None, None), Subscriber("a@example.org", None, None)}
    assert len(twins) == 1
    assert "_wanted" not in repr(Subscriber("a@example.org", None, None))


def test_an_alias_to_an_earlier_entry_is_a_duplicate_of_it(tmp_path):
    result = _load(tmp_path, "- &ana {email: ana@example.org}\n- email: bob@example.org\n"
                             "- *ana\n")
    assert _emails(result) == ["ana@example.org", "bob@example.org"]
    assert [(line, message) for line, message, _ in _problems(result)] == [
        (1, "'ana@example.org' is already subscribed at line 1")]


@pytest.mark.parametrize("start", ["--- !!seq\n", "&everyone\n"])
def test_a_tagged_or_anchored_list_is_still_a_list(tmp_path, start):
    result = _load(tmp_path, start + "- email: ana@example.org\n- email: bad@\n")
    assert _emails(result) == ["ana@example.org"]
    assert [line for line, _, _ in _problems(result)] == [3]


def test_a_long_list_is_read_without_holding_the_whole_yaml_tree(tmp_path):
    """Entries are composed one at a time: a node tree of the whole file cost ~4 KB per
    entry (500 MB for 100,000); what is kept is the subscribers themselves."""
    count = 5000
    text = "".join(f"- email: user{i}@example.org\n  name: Ana Gómez {i}\n"
                   f"  tags: [union, analytics]\n" for i in range(count))
    tracemalloc.start()
    try:
        result = parse_subscribers(tmp_path / "subscribers.yaml", text, KNOWN)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.subscribers) == count
    assert result.subscribers[0].tags is result.subscribers[-1].tags  # one tuple per tag list
    assert peak < 1000 * count
    assert kept < 400 * count


def test_packed_subscribers_read_back_exactly_and_equal_a_tuple():
    """The file's subscribers are kept packed (bytes and indexes), made into Subscribers as
    they are read: every field comes back as it went in."""
    people = (Subscriber("ana@example.org", "Ana Gómez", ("union",), (), 2),
              Subscriber("Bob@example.org", None, None, ("remote",), 5),
              Subscriber("cy@xn--bcher-kva.de", "Cy 李", ("union",), (), None))
    packed = Packed(people)
    assert packed == people and list(packed) == list(people)
    assert len(packed) == 3 and packed[-1] == people[2] and packed[1:] == people[1:]
    assert packed[0].tags is packed[2].tags  # one tuple per distinct tag choice
    assert list(packed.keys()) == ["ana@example.org", "bob@example.org", "cy@xn--bcher-kva.de"]
    assert packed.joined([Subscriber("dee@example.org", None, None)]) == (
        *people, Subscriber("dee@example.org", None, None))
    assert len(packed) == 3  # joined left it as it was
    with pytest.raises(IndexError):
        packed[3]


def test_a_packed_lists_fingerprint_tells_its_addresses_and_names_apart():
    """What a run's roster is made of (delivery/send.py): equal for the same records (a
    list read again, tag choices aside), different for any other address, name or order."""
    people = [Subscriber("ana@example.org", "Ana", ("union",), (), 2),
              Subscriber("bob@example.org", None, None, (), 3)]
    same = Packed(people).fingerprint()
    assert Packed(list(people)).fingerprint() == same
    assert Packed([people[0], Subscriber("bob@example.org", None, ("x",), (), 9)]
                  ).fingerprint() == same  # tags and lines are not pairs
    for other in ([people[0]], people[::-1],
                  [people[0], Subscriber("bob@example.com", None, None, (), 3)],
                  [people[0], Subscriber("bob@example.org", "Bob", None, (), 3)],
                  [Subscriber("ana@example.orgb", None, None), Subscriber("ob@example.org",
                                                                         None, None)],
                  [*people, Subscriber("cy@example.org", None, None)]):
        assert Packed(other).fingerprint() != same, other


def test_packed_subscribers_repr_is_short_whatever_their_number():
    """asyncio.Runner formats its main task, result included, when it exits: a repr of
    every subscriber cost a send 0.2 s at 20,000 (and names them all)."""
    packed = Packed(Subscriber(f"user{i}@example.org", None, None) for i in range(5000))
    assert repr(packed) == "<Packed: 5000 subscribers>"
    assert "user1@" not in repr(SubscriberList(packed, (), ()))


def test_equal_tag_lists_share_one_tuple_however_they_are_written(tmp_path):
    text = ("- email: a@example.org\n  tags: [union, remote]\n"
            "- email: b@example.org\n  tags: union remote\n"
            "- email: c@example.org\n  tags: 'union, remote'\n  exclude_tags: [x]\n"
            "- email: d@example.org\n  exclude_tags: x\n")
    a, b, c, d = _load(tmp_path, text, known=("union", "remote", "x")).subscribers
    assert a.tags == ("union", "remote") and a.tags is b.tags is c.tags
    assert c.exclude_tags is d.exclude_tags


def test_duplicates_are_found_across_the_sorted_runs_and_despite_a_shared_hash(tmp_path):
    """Keys seen are kept by hash in a small dict, then in sorted arrays merged as they
    grow; two addresses with one hash (rare) must still be told apart."""
    served = Packed()
    seen = _Seen(served, chunk=4)  # runs of 4, 4+4, ... from the 4th key on
    for i in range(37):
        key = f"user{i}@example.org"
        assert seen.first(key) is None
        seen.add(key, len(served))
        served.append(Subscriber(key, None, None, line=i + 1))
    assert [seen.first(f"user{i}@example.org") for i in range(37)] == list(range(37))
    assert seen.first("user37@example.org") is None
    # pretend another address has user36's hash, in the dict of the latest keys
    seen._recent[hash("late@example.org")] = seen._recent[hash("user36@example.org")]
    assert seen.first("late@example.org") is None
    served.append(Subscriber("late@example.org", None, None))
    assert seen.first("late@example.org") == 37  # found by looking through
    path = tmp_path / "subscribers.yaml"
    text = "".join(f"- email: u{i}@example.org\n" for i in range(70_000)) + \
        "- email: U5@example.org\n- email: u69999@example.org\n"
    result = parse_subscribers(path, text, KNOWN)
    assert len(result.subscribers) == 70_000
    assert [(p.line, p.message) for p in result.problems] == [
        (70_001, "'U5@example.org' is already subscribed at line 6"),
        (70_002, "'u69999@example.org' is already subscribed at line 70000")]


def test_bytes_not_utf8_far_into_a_big_file_name_their_line(tmp_path):
    """The file is checked a megabyte at a time: a bad byte after a character split across
    two chunks still names its own line."""
    entry = "- email: user@example.org\n  name: Gómez\n"
    head = ("#" * (2**20 - 1) + "é\n").encode()  # 'é' straddles the first megabyte
    raw = head + entry.encode() + b"- email: b@example.org\n  name: G\xe9mez\n"
    with pytest.raises(SubscribersUnreadable) as caught:
        _load(tmp_path, raw)
    assert caught.value.problem == Problem(
        tmp_path / "subscribers.yaml", 5, "not UTF-8: byte 0xe9 cannot be decoded",
        "save the file as UTF-8")


def test_bytes_and_text_parse_alike(tmp_path):
    """The file is parsed from its bytes; the last good copy from the state is text: the
    same entries, lines and problems either way, a refused character included."""
    path = tmp_path / "subscribers.yaml"
    text = ("\ufeff- email: ana@example.org\n  name: Ána\n- email: bad\n"
            "- email: cy@example.org\n  tags: [nope]\n")
    assert parse_subscribers(path, text.encode(), KNOWN) == parse_subscribers(path, text, KNOWN)
    refused = "- email: ana@example.org\n  name: Ána\n- email: b@example.org\x07\n"
    for form in (refused, refused.encode()):
        with pytest.raises(SubscribersUnreadable) as caught:
            parse_subscribers(path, form, KNOWN)
        assert (caught.value.problem.line, caught.value.problem.message) == (
            3, "invalid YAML: the character 0x07 is not allowed")


def test_a_packed_list_finds_a_subscriber_by_key():
    people = [Subscriber(f"User{i}@example.org", None, None, line=i + 1) for i in range(300)]
    packed = Packed(people)
    assert packed.find("user7@example.org") == people[7]
    assert packed.find("user299@example.org") == people[299]
    assert packed.find("User7@example.org") is None  # keys are lower case
    assert packed.find("nobody@example.org") is None
    packed.append(Subscriber("late@example.org", None, None))
    assert packed.find("late@example.org") == Subscriber("late@example.org", None, None)


# every kind of address the shortcut takes or must leave to email-validator
_ADDRESSES = (
    "ana@example.org", "Ana.Silva@Example.ORG", "a+b-c_d!#$%&'*/=?^`{|}~@example.org",
    "o'brien@sub.example.co.uk", "PostMaster@example.org", "abuse@example.org",
    "ana@localhost", "ana@example", "ana@example.test", "ana@example.invalid",
    "ana@123.123.123.123", "ana@[192.0.2.1]", "ana@-example.org", "ana@example-.org",
    "ana@exa_mple.org", "ana@example..org", "ana@.example.org", "ana@example.org.",
    "ana@xn--bcher-kva.example", "ana@bücher.example", "ana@BÜCHER.example",
    "ana@xn--bcher-kva.de", "ana@xn--zz.example", ".ana@example.org", "ana.@example.org",
    "an..a@example.org", "@example.org", "ana@", "ana", "ana@@example.org",
    "\"ana\"@example.org", "\"a n a\"@example.org", "ána@example.org", "Ana <ana@example.org>",
    "ana @example.org", "ana@ex ample.org", "ana@example.org\n", "a" * 64 + "@example.org",
    "a" * 65 + "@example.org", "a" * 241 + "@example.org", "a" * 242 + "@example.org",
    "ana@" + "a" * 63 + ".org", "ana@" + "a" * 64 + ".org",
    "ana@" + ".".join(["abcdefghi"] * 25) + ".org",
    "ana@" + ".".join(["abcdefghi"] * 24) + ".org",
    "ana@example.123", "ana@example.c", "ana@EXAMPLE.COM",
)


def test_the_address_shortcut_answers_exactly_as_email_validator():
    """check_address skips validate_email for a plain address whose domain it has seen: every
    answer, the message and hint of a refusal included, is what validate_email gives."""
    from digest.subscribers.load import _plain_address, _validated, check_address
    for address in _ADDRESSES:
        for _ in range(2):  # the second time, the domain is known
            assert check_address(address) == _validated(address), address
    taken = [a for a in _ADDRESSES if _plain_address(a) is not None]
    assert "Ana.Silva@Example.ORG" in taken and "PostMaster@example.org" not in taken
    assert len(taken) >= 8  # the shortcut is really used, not just the fallback


@given(st.text(alphabet="aZ09.-_+@\"<> [];:\\éü\n", max_size=40),
       st.sampled_from(("example.org", "EXAMPLE.org", "localhost", "bücher.example", "x.c",
                        "a-.org", "xn--bcher-kva.example", "1.2.3.4", "ex..org", "")))
@settings(max_examples=400, deadline=None)
def test_the_address_shortcut_agrees_on_random_addresses(local, domain):
    from digest.subscribers.load import _validated, check_address
    address = f"{local}@{domain}"
    assert check_address(address) == _validated(address)


# An entry of the usual form is built from its parser events (load._direct); these hold it
# to composing and constructing it with PyYAML, on every line and value and refusal.

_TEXTS = ("ana@example.org", "Ana Gómez", "union", "", "~", "null", "true", "No", "1", "0x1F",
          "1_000", "0o17", "1e5", ".nan", "-.inf", "2019-02-30", "2024-01-22", "12:30:00",
          "<<", "=", "a b", "x" * 5000, "9" * 5000, "#c", "a: b", "[x]", "é\u2028")
_KEYS_WRITTEN = ("email", "name", "tags", "exclude_tags", "tag", "1", "true", "<<", "=", "~")


def _written(text: str, style: str) -> str:
    if style == "'":
        return "'" + text.replace("'", "''") + "'"
    if style == '"':
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace(
            "\u2028", "\\L") + '"'
    return text  # plain: may not be valid YAML, and then both ways refuse the file alike


_scalars = st.builds(_written, st.sampled_from(_TEXTS), st.sampled_from(("", "'", '"')))
_decorated = st.one_of(
    *[_scalars] * 4,
    st.builds(lambda s: f"!!str {s}", _scalars), st.builds(lambda s: f"!!int {s}", _scalars),
    st.builds(lambda s: f"&a {s}", _scalars), st.just("*a"), st.just("!!binary aGk="))


@st.composite
def _value(draw: st.DrawFn, indent: int, scalar: st.SearchStrategy[str]) -> str:
    kind = draw(st.sampled_from(("scalar", "scalar", "flow", "block", "map", "empty")))
    if kind == "scalar":
        return " " + draw(scalar)
    if kind == "empty":
        return ""
    if kind == "flow":
        return " [" + ", ".join(draw(st.lists(scalar, max_size=3))) + "]"
    pad = " " * (indent + 2)
    if kind == "block":
        items = draw(st.lists(scalar, min_size=1, max_size=3))
        return "".join(f"\n{pad}- {item}" for item in items)
    return f"\n{pad}email: " + draw(scalar)


@st.composite
def _item(draw: st.DrawFn) -> str:
    """One entry: the usual form (mappings of the four keys to scalars and lists of them,
    plain or quoted), or anything near it (tags, anchors, aliases, odd keys, nesting)."""
    usual = draw(st.booleans())  # so that most entries take the direct way
    scalar: st.SearchStrategy[str] = _scalars if usual else _decorated
    keys_written = _KEYS_WRITTEN[:4] if usual else _KEYS_WRITTEN
    kinds = ("block", "flow") if usual else ("block", "flow", "scalar", "empty", "anchored")
    kind = draw(st.sampled_from(kinds))
    if kind == "scalar":
        return "- " + draw(scalar)
    if kind == "empty":
        return "-"
    keys = draw(st.lists(st.builds(_written, st.sampled_from(keys_written),
                                   st.sampled_from(("", "", "'"))), min_size=1, max_size=4))
    if kind == "flow":
        return "- {" + ", ".join(f"{k}: {draw(scalar)}" for k in keys) + "}"
    lines = [f"{k}:{draw(_value(2, scalar))}" for k in keys]
    head = "- &a " if kind == "anchored" else "- "
    return head + ("\n" + head.replace("-", " ").replace("&a", "  ")).join(
        "\n".join(line.splitlines()) for line in lines).rstrip()


@given(st.lists(_item(), min_size=1, max_size=5), st.sampled_from((100_000, 3)))
@settings(max_examples=600, deadline=None)
def test_entries_built_from_events_are_exactly_the_composed_ones(items, max_nodes):
    from digest.subscribers.load import _entries
    text = "\n".join(items) + "\n"
    path = Path("subscribers.yaml")

    def outcome(direct: bool) -> str:
        try:
            return repr(list(_entries(path, text, max_nodes, direct=direct)))
        except SubscribersUnreadable as exc:
            return f"unreadable {exc.problem!r}"

    assert outcome(True) == outcome(False), text


def test_the_usual_entry_is_built_from_events_and_an_unusual_one_is_left_to_pyyaml():
    """The equivalence above is only worth something if both ways are really taken."""
    import yaml

    from digest.subscribers.load import _item
    from digest.util.yamlsource import BoundedLoader

    def read(text: str) -> object:
        loader = BoundedLoader(text)
        for _ in range(3):  # stream, document and list start
            loader.get_event()
        try:
            return _item(loader, 100, True)
        finally:
            loader.dispose()

    built = read("- email: ana@example.org\n  name: 7\n  tags:\n    - union\n    - 2024\n")
    assert isinstance(built, tuple)
    where, value, problem = built
    assert (where.line, where.keys, problem) == (1, {"email": 1, "name": 2, "tags": 3}, None)
    assert value == {"email": "ana@example.org", "name": 7, "tags": ["union", 2024]}
    for unusual in ("- &a {email: a@example.org}", "- {email: !!str a}", "- {1: a}",
                    "- {email: *a}", "- {tags: [[a]]}", "- {tags: 2019-02-30}",
                    "- a@example.org", "- {<<: {email: a@example.org}}"):
        events = read(unusual)
        assert isinstance(events, list), unusual  # every event of the item, for PyYAML
        assert isinstance(events[-1], yaml.MappingEndEvent | yaml.ScalarEvent), unusual
