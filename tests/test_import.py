"""`digest subscribers import`: Mailchimp's audience export (its ZIP or one of its CSVs) and
plain CSVs, through the real command line into a real state database.

The fixtures in tests/fixtures/import are written the way Mailchimp writes its exports (its
documented columns, a UTF-8 BOM, CRLF, quoted fields holding commas and line breaks, TAGS
as a quoted list inside the cell); the ZIP is built here from them.
"""

from __future__ import annotations

import random
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import make_site, post, run_cli

from digest.config import load_config
from digest.state.interface import Member, SharedState
from digest.state.open import open_state
from digest.subscribers.current import read_subscribers
from digest.subscribers.imports import parse_import

FIXTURES = Path(__file__).parent / "fixtures" / "import"
EXPORT = "8a1f2c3d4e"
MAILCHIMP = [f"{status}_members_export_{EXPORT}.csv"
             for status in ("subscribed", "unsubscribed", "cleaned")]
POSTS = {"2024-05-01-organizer.md": post("Organizer", tags="[union, data]"),
         "2024-05-02-analyst.md": post("Analyst", tags="[campaigns]")}


def _site(tmp_path: Path, limits: dict[str, int] | None = None) -> Path:
    """A site whose subscribers file has ana@example.org (also in the Mailchimp export)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "subscribers.yaml").write_text("- email: ana@example.org\n", encoding="utf-8")
    extra: dict[str, object] = {"subscribers": "subscribers.yaml"}
    if limits:
        extra["limits"] = limits
    return make_site(tmp_path, POSTS, extra=extra)


def _zip(tmp_path: Path, names: list[str] = MAILCHIMP, **extra: str) -> Path:
    path = tmp_path / f"members_export_{EXPORT}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.write(FIXTURES / name, name)
        for name, text in extra.items():
            archive.writestr(name, text)
    return path


def _import(config: Path, file: Path, *options: str) -> tuple[int, str, str]:
    return run_cli(["subscribers", "import", str(file), *options, "--config", str(config)])


def _state(config: Path) -> SharedState:
    return open_state(load_config(config))


def _counts(out: str) -> str:
    return out.strip().splitlines()[-1]


def _members(config: Path) -> dict[str, Member]:
    state = _state(config)
    try:
        return {m.key: m for m in state.members()}
    finally:
        state.close()


def _suppressed(config: Path) -> dict[str, tuple[str, str]]:
    state = _state(config)
    try:
        return {s.key: (s.reason, s.evidence) for s in state.suppressions()}
    finally:
        state.close()


def test_a_mailchimp_zip_adds_members_and_suppresses_with_mailchimps_reasons(
        tmp_path: Path) -> None:
    config = _site(tmp_path)
    export = _zip(tmp_path)
    code, out, err = _import(config, export)
    assert code == 0, err
    assert _counts(out) == ("new 3, updated 0, unchanged 0, suppressed 3, kept suppressed 0, "
                            "already in the subscribers file 1, rejected 0 (mailchimp)")
    members = _members(config)
    assert set(members) == {"bea.lopez@example.org", "carl@example.net",
                            "dee@xn--bcher-kva.de"}  # ana is left to the subscribers file
    bea = members["bea.lopez@example.org"]
    assert (bea.email, bea.name, bea.tags, bea.source) == (
        "Bea.Lopez@example.org", "Bea López", ("campaigns",), "import")
    assert members["carl@example.net"].tags is None  # no TAGS: every post
    assert members["dee@xn--bcher-kva.de"].tags == ("Jobs Board", "union")
    assert members["dee@xn--bcher-kva.de"].name == "Dee Brandt"
    suppressed = _suppressed(config)
    assert suppressed["eve@example.org"][0] == (
        "unsubscribed in Mailchimp (2024-03-01, reason: I no longer want to receive these "
        "emails, campaign: Weekly jobs, March 1)")
    assert suppressed["fay@example.org"][0] == (
        "unsubscribed in Mailchimp (2024-04-12, reason: Other: too many emails, sorry)")
    assert suppressed["gus@example.com"] == (
        "cleaned in Mailchimp (bounced, 2023-11-20)",
        f"imported from {export}/cleaned_members_export_{EXPORT}.csv:2")
    # a Mailchimp tag no post has is imported, with a warning at its first row
    assert (f"warning: {export}/subscribed_members_export_{EXPORT}.csv:6: no post has the "
            "tag 'Jobs Board' (in 1 row, still imported)") in err
    # and the members are on the list every command reads, after the file
    state = _state(config)
    try:
        listed = read_subscribers(load_config(config), state, set(), keep=False)
    finally:
        state.close()
    assert [s.key for s in listed.subscribers][:2] == ["ana@example.org",
                                                        "bea.lopez@example.org"]


def test_importing_the_same_export_again_changes_nothing(tmp_path: Path) -> None:
    config = _site(tmp_path)
    export = _zip(tmp_path)
    assert _import(config, export)[0] == 0
    before = (_members(config), _suppressed(config))
    code, out, _ = _import(config, export)
    assert code == 0
    assert _counts(out) == ("new 0, updated 0, unchanged 6, suppressed 0, kept suppressed 0, "
                            "already in the subscribers file 1, rejected 0 (mailchimp)")
    assert (_members(config), _suppressed(config)) == before
    # a changed name is an update; the member keeps the time it first came
    changed = tmp_path / MAILCHIMP[0]
    changed.write_bytes((FIXTURES / MAILCHIMP[0]).read_bytes().replace(b"Carl,", b"Carla,"))
    code, out, _ = _import(config, changed)
    assert _counts(out).startswith("new 0, updated 1, unchanged 2,")
    carl = _members(config)["carl@example.net"]
    assert carl.name == "Carla" and carl.since == before[0]["carl@example.net"].since


@pytest.mark.parametrize("name", MAILCHIMP)
def test_each_csv_of_the_export_alone_gets_its_status_from_its_name_or_its_columns(
        tmp_path: Path, name: str) -> None:
    """Named as Mailchimp names it, or renamed: the UNSUB_/CLEAN_ columns tell the same."""
    expected = {MAILCHIMP[0]: "new 3, updated 0, unchanged 0, suppressed 0",
                MAILCHIMP[1]: "new 0, updated 0, unchanged 0, suppressed 2",
                MAILCHIMP[2]: "new 0, updated 0, unchanged 0, suppressed 1"}[name]
    for target in (tmp_path / "a" / name, tmp_path / "b" / "export.csv"):
        site = target.parent / "site"
        config = _site(site)
        target.write_bytes((FIXTURES / name).read_bytes())
        code, out, err = _import(config, target)
        assert code == 0, err
        assert _counts(out).startswith(expected), target
        assert _counts(out).endswith("(mailchimp)")


def test_a_suppression_always_wins_over_a_subscribed_row(tmp_path: Path) -> None:
    config = _site(tmp_path)
    code, _, _ = run_cli(["unsubscribe", "bea.lopez@example.org", "--config", str(config)])
    assert code == 0
    code, out, _ = _import(config, FIXTURES / MAILCHIMP[0])
    assert code == 0
    assert _counts(out).startswith("new 2, updated 0, unchanged 0, suppressed 0, "
                                   "kept suppressed 1, already in the subscribers file 1,")
    assert "bea.lopez@example.org" not in _members(config)
    assert _suppressed(config)["bea.lopez@example.org"][0] == "digest unsubscribe"


def test_an_unsubscribed_row_takes_back_what_an_earlier_import_added(tmp_path: Path) -> None:
    config = _site(tmp_path)
    first = tmp_path / "first.csv"
    first.write_text("email\nhal@example.org\n", encoding="utf-8")
    assert _import(config, first)[0] == 0
    assert "hal@example.org" in _members(config)
    later = tmp_path / "later.csv"
    later.write_text("email,status\nhal@example.org,unsubscribed\n", encoding="utf-8")
    code, out, _ = _import(config, later)
    assert code == 0
    assert _counts(out).startswith("new 0, updated 0, unchanged 0, suppressed 1,")
    assert "hal@example.org" not in _members(config)
    assert _suppressed(config)["hal@example.org"] == (
        "unsubscribed (imported from later.csv)", f"imported from {later}:2")


def test_someone_who_signed_up_keeps_what_they_chose(tmp_path: Path) -> None:
    config = _site(tmp_path)
    state = _state(config)
    try:
        state.put_member(Member("hal@example.org", "hal@example.org", "Hal", ("union",),
                                "signup", datetime(2024, 1, 1, tzinfo=UTC)))
    finally:
        state.close()
    csv = tmp_path / "members.csv"
    csv.write_text("email,name,tags\nhal@example.org,H.,data\n", encoding="utf-8")
    code, out, _ = _import(config, csv)
    assert code == 0
    assert _counts(out).startswith("new 0, updated 0, unchanged 1,")
    hal = _members(config)["hal@example.org"]
    assert (hal.name, hal.tags, hal.source) == ("Hal", ("union",), "signup")


def test_a_plain_csv_with_statuses(tmp_path: Path) -> None:
    config = _site(tmp_path)
    code, out, err = _import(config, FIXTURES / "members.csv")
    assert code == 0, err
    assert _counts(out) == ("new 2, updated 0, unchanged 0, suppressed 2, kept suppressed 0, "
                            "already in the subscribers file 0, rejected 0 (csv)")
    members = _members(config)
    assert members["hal@example.org"].tags == ("union", "data")  # plain "union, data"
    assert members["ida@example.org"].name is None
    assert _suppressed(config)["kim@example.org"][0] == "bounced (imported from members.csv)"


def test_dry_run_counts_exactly_and_writes_nothing(tmp_path: Path) -> None:
    config = _site(tmp_path)
    assert run_cli(["build", "--config", str(config)])[0] == 0  # the state folder exists
    export = _zip(tmp_path)
    def files() -> dict[Path, tuple[bytes, int]]:
        """The state folder, but for config.json: the config's cache, which every command
        loading the config may refresh."""
        return {p: (p.read_bytes(), p.stat().st_mtime_ns)
                for p in (tmp_path / "state").rglob("*") if p.is_file()
                and p.name != "config.json"}

    before = files()
    assert any(p.name == "state.sqlite3" for p in before)
    code, dry, _ = _import(config, export, "--dry-run")
    assert code == 0
    assert files() == before
    assert _members(config) == {} and _suppressed(config) == {}
    code, real, _ = _import(config, export)
    assert dry.strip() == "dry run, nothing written: " + real.strip()


def test_rejected_rows_are_named_by_their_physical_line_and_the_rest_imported(
        tmp_path: Path) -> None:
    """bad-rows.csv: line 2's quoted field runs to line 4, a blank line 6."""
    config = _site(tmp_path)
    bad = FIXTURES / "bad-rows.csv"
    code, out, err = _import(config, bad)
    assert code == 1
    assert _counts(out).startswith("new 2,") and _counts(out).endswith("rejected 5 (csv)")
    rejected = [line for line in err.splitlines() if line.startswith("rejected: ")]
    assert rejected == [
        f"rejected: {bad}:5: invalid address 'not-an-address': An email address must have "
        "an @-sign. (correct the address, or remove the row)",
        f"rejected: {bad}:7: unknown status 'maybe' (allowed: bounced, cleaned, subscribed, "
        "unsubscribed)",
        f"rejected: {bad}:8: no address in this row (fill in the email column, or remove the "
        "row)",
        f"rejected: {bad}:9: 'LEE@example.org' is already at line 2 (remove one of the two "
        "rows)",
        f"rejected: {bad}:10: the name contains the control character U+0009 (write the name "
        "on one line, without control characters)"]
    assert set(_members(config)) == {"lee@example.org", "ona@example.org"}


def test_an_address_in_two_files_of_the_zip_is_suppressed_and_reported(
        tmp_path: Path) -> None:
    """The cleaned and unsubscribed files are read first: their row is the one kept."""
    config = _site(tmp_path)
    subscribed = (FIXTURES / MAILCHIMP[0]).read_text(encoding="utf-8-sig")
    export = _zip(tmp_path, MAILCHIMP[1:], **{
        MAILCHIMP[0]: subscribed + "eve@example.org,Eve,,,,,2,,,,,,,,,,,,,,,,\r\n"})
    code, out, err = _import(config, export)
    assert code == 1 and _counts(out).endswith("rejected 1 (mailchimp)")
    assert "eve@example.org" not in _members(config)
    assert f"rejected: {export}/{MAILCHIMP[0]}:7: 'eve@example.org' is already at " \
           f"{export}/{MAILCHIMP[1]}:2 (remove one of the two rows)" in err


def test_a_nonsubscribed_export_is_skipped(tmp_path: Path) -> None:
    config = _site(tmp_path)
    header = "Email Address,First Name,Last Name,MEMBER_RATING,LEID,EUID,NOTES,TAGS\r\n"
    export = _zip(tmp_path, MAILCHIMP[:1], **{
        f"nonsubscribed_members_export_{EXPORT}.csv": header + "zed@example.org,Zed,,,,,,\r\n"})
    code, out, _ = _import(config, export)
    assert code == 0
    assert "skipped 1 never subscribed" in out
    assert "zed@example.org" not in _members(config)


def test_tags_as_mailchimp_writes_them_and_as_people_do() -> None:
    text = ('email,tags\na@example.org,"""union"",""Data Science"""\n'
            'b@example.org,"union, Data Science ,union"\nc@example.org," "\n')
    parsed = parse_import(Path("t.csv"), text.encode(), ["union"])
    assert [r.tags for r in parsed.records] == [("union", "Data Science"),
                                                ("union", "Data Science"), None]
    many = "d@example.org," + '"' + ",".join(f"t{i}" for i in range(2_001)) + '"\n'
    long = "e@example.org," + "x" * 257 + "\n"
    parsed = parse_import(Path("t.csv"), ("email,tags\n" + many + long).encode(), ["union"])
    assert [(p.line, p.message) for p in parsed.rejected] == [
        (2, "over 2,000 tags"),
        (3, "a tag is over 256 characters or has a control character")]


def test_a_windows_1252_file_is_read_with_a_warning(tmp_path: Path) -> None:
    """What Excel writes on Windows; an address that is not ASCII could be misread, so its
    row is refused."""
    config = _site(tmp_path)
    code, out, err = _import(config, FIXTURES / "members-cp1252.csv")
    assert code == 0
    assert {m.name for m in _members(config).values()} == {"Pía Muñoz", "Quinn O\u2019Neil"}
    assert f"warning: {FIXTURES / 'members-cp1252.csv'}:2: not UTF-8: read as " \
           "Windows-1252" in err
    idn = tmp_path / "idn.csv"
    idn.write_bytes("email\nrui@bücher.de\n".encode("cp1252"))
    code, out, err = _import(config, idn)
    assert code == 1 and _counts(out).startswith("new 0,")
    assert f"rejected: {idn}:2: address 'rui@bücher.de' is not ASCII, and the file is not " \
           "UTF-8" in err
    # the same address in UTF-8 is fine
    idn.write_text("email\nrui@bücher.de\n", encoding="utf-8")
    assert _import(config, idn)[0] == 0


def test_a_csv_with_old_mac_line_ends_reads_the_same(tmp_path: Path) -> None:
    config = _site(tmp_path)
    csv = tmp_path / "cr.csv"
    csv.write_bytes(b"email,name\rsal@example.org,Sal\rtia@example.org,Tia\r")
    code, out, _ = _import(config, csv)
    assert code == 0 and _counts(out).startswith("new 2,")


@pytest.mark.parametrize(("content", "options", "message"), [
    (None, (), "cannot read: No such file or directory"),
    (b"", (), "the file is empty"),
    (b"name,tags\nAna,union\n", (), "no 'email' column in the first row"),
    (b"Name\nAna\n", ("--format", "mailchimp"),
     "no 'Email Address' column in the first row"),
    (b"email\n\x81\x8d\x8f\n", (), "not a text file"),
    (b"PK\x03\x04 not really a zip", (), "cannot read the ZIP"),
])
def test_a_file_that_cannot_be_used_at_all_is_exit_2(
        tmp_path: Path, content: bytes | None, options: tuple[str, ...],
        message: str) -> None:
    config = _site(tmp_path)
    file = tmp_path / "in.csv"
    if content is not None:
        file.write_bytes(content)
    code, out, err = _import(config, file, *options)
    assert code == 2
    assert err.startswith(f"error: {file}") and message in err, err
    assert "Traceback" not in err and out == ""


def test_a_zip_given_as_csv_is_refused(tmp_path: Path) -> None:
    config = _site(tmp_path)
    code, _, err = _import(config, _zip(tmp_path), "--format", "csv")
    assert code == 2 and "this is a ZIP file, not a CSV (use --format mailchimp" in err


def test_hostile_files_are_refused_fast_and_clearly(tmp_path: Path) -> None:
    config = _site(tmp_path)
    huge_field = tmp_path / "huge-field.csv"
    huge_field.write_text("email,notes\na@example.org,ok\nb@example.org,\"" + "x" * 5_000_000
                          + '"\n', encoding="utf-8")
    million = tmp_path / "million.csv"
    million.write_text("email\n" + "a@example.org\n" * 1_000_000, encoding="utf-8")
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(random.Random(14).randbytes(2_000_000))
    for file, message in (
            (huge_field, f"{huge_field}:3: not CSV: field larger than field limit (100000)"),
            (million, f"{million}:500002: over 500,000 rows (split the file"),
            (garbage, f"{garbage}: not a text file")):
        started = time.monotonic()
        code, out, err = _import(config, file)
        took = time.monotonic() - started
        assert (code, out) == (2, ""), err
        assert err.startswith(f"error: {message}"), err
        assert took < 5, f"{file.name}: {took:.1f}s"
    assert _members(config) == {}  # nothing taken from a refused file


def test_the_byte_limit_bounds_the_file_and_what_a_zip_unpacks_to(tmp_path: Path) -> None:
    config = _site(tmp_path, limits={"subscribers_bytes": 50_000})
    big = tmp_path / "big.csv"
    big.write_text("email\n" + "a@example.org\n" * 5_000, encoding="utf-8")
    code, _, err = _import(config, big)
    assert code == 2 and f"error: {big}: the file is over 50,000 bytes" in err
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"subscribed_members_export_{EXPORT}.csv",
                         "Email Address\n" + "a@example.org\n" * 1_000_000)
    assert bomb.stat().st_size < 50_000
    code, _, err = _import(config, bomb)
    assert code == 2 and f"error: {bomb}: the ZIP unpacks to over 50,000 bytes" in err


def test_an_unsubscribed_export_read_as_a_plain_csv_still_suppresses(tmp_path: Path) -> None:
    """Without a status column, --format csv takes the status as Mailchimp's columns say:
    an unsubscribed export never becomes a list of members."""
    config = _site(tmp_path)
    renamed = tmp_path / "export.csv"
    renamed.write_bytes((FIXTURES / MAILCHIMP[1]).read_bytes())
    code, out, _ = _import(config, renamed, "--format", "csv")
    assert code == 0
    assert _counts(out).startswith("new 0, updated 0, unchanged 0, suppressed 2,")
    assert _counts(out).endswith("(csv)")
    assert _suppressed(config)["eve@example.org"][0] == "unsubscribed (imported from export.csv)"


def test_a_windows_1252_csv_inside_a_zip_is_warned_about_too(tmp_path: Path) -> None:
    config = _site(tmp_path)
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.writestr(f"subscribed_members_export_{EXPORT}.csv",
                         "Email Address,First Name\r\npia@example.org,Pía\r\n".encode("cp1252"))
    code, _, err = _import(config, export)
    assert code == 0
    assert f"warning: {export}/subscribed_members_export_{EXPORT}.csv:2: not UTF-8" in err
    assert _members(config)["pia@example.org"].name == "Pía"
