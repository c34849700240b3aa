"""A Mailchimp audience export, or a plain CSV, read into import records: bytes in, records
and rejections out, nothing written (import_apply.py puts them into the state).

Mailchimp exports an audience as a ZIP of CSVs, one per status:
`subscribed_members_export_<id>.csv`, `unsubscribed_members_export_<id>.csv` and
`cleaned_members_export_<id>.csv` (and, lately, `nonsubscribed_…`: never opted in, skipped).
Each has "Email Address", the audience's fields ("First Name", "Last Name", ...), then
MEMBER_RATING, OPTIN_TIME, OPTIN_IP, CONFIRM_TIME, CONFIRM_IP, LATITUDE, LONGITUDE, GMTOFF,
DSTOFF, TIMEZONE, CC, REGION, LAST_CHANGED (subscribed), UNSUB_TIME, UNSUB_CAMPAIGN_TITLE,
UNSUB_CAMPAIGN_ID, UNSUB_REASON, UNSUB_REASON_OTHER (unsubscribed) or CLEAN_TIME,
CLEAN_CAMPAIGN_TITLE, CLEAN_CAMPAIGN_ID (cleaned), LEID, EUID, NOTES and TAGS, where the tags
are themselves quoted and comma-separated: `"union","analytics"`. Columns are found by name
(case-insensitive, any order; the others are ignored), so an audience with other fields, or
an older export, reads the same. A plain CSV has `email` (or `Email Address`) and optionally
`name` (or First/Last Name), `tags` and `status` (subscribed, unsubscribed, cleaned, bounced).

Choices, each because a guess could mail someone who did not ask for it:
- Not UTF-8: read as Windows-1252 (what Excel writes on Windows), with a warning; a row
  whose address is then not ASCII is rejected, since its domain may have been misread.
- An address twice: the first row is kept and the later one rejected, naming both lines; in
  a ZIP the cleaned and unsubscribed files are read first, so a suppression is kept.
- Every input is bounded before it is parsed: the bytes (limits.subscribers_bytes, for a ZIP
  what it unpacks to as well), the rows (ROWS, counted before any is checked), a field
  (FIELD_CHARS), a name (NAME_CHARS), the tags of a row (limits.tags, limits.tag_length).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import zipfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..config import DEFAULT_LIMITS, Limits
from ..errors import Problem, SubscribersUnreadable, did_you_mean
from .load import check_address, control_character

Format = Literal["mailchimp", "csv"]
Status = Literal["subscribed", "unsubscribed", "cleaned"]

ROWS = 500_000  # five times the 100,000 subscribers the send is measured with
FIELD_CHARS = 100_000  # one CSV field; a Mailchimp NOTES field is the longest real one
NAME_CHARS = 200
REASON_CHARS = 200
ZIP_ENTRIES = 100  # Mailchimp's ZIP has three or four
_EXPORT_NAME = re.compile(r"^(subscribed|unsubscribed|cleaned|nonsubscribed)_members_export",
                          re.I)
_STATUSES: dict[str, Status] = {"subscribed": "subscribed", "unsubscribed": "unsubscribed",
                                "cleaned": "cleaned", "bounced": "cleaned"}
_EMAIL_COLUMNS = ("email", "email address", "e-mail", "e-mail address")
_MAILCHIMP_ONLY = {"member_rating", "optin_time", "confirm_time", "leid", "euid",
                   "unsub_time", "clean_time", "last_changed"}


@dataclass(frozen=True, slots=True)
class Record:
    """One row taken: an address to add (subscribed) or to suppress (the others)."""

    email: str  # the ASCII envelope form, as Subscriber.email
    name: str | None
    tags: tuple[str, ...] | None  # None: every post
    status: Status
    reason: str  # why it is suppressed ("" when subscribed)
    path: Path  # the file, or ZIP/member, it came from
    line: int

    @property
    def key(self) -> str:
        return self.email.lower()

    @property
    def evidence(self) -> str:
        return f"imported from {self.path}:{self.line}"


@dataclass(frozen=True)
class Parsed:
    format: Format
    records: tuple[Record, ...]
    rejected: tuple[Problem, ...]  # one per row not taken, at its first line
    warnings: tuple[Problem, ...]  # taken, but worth a look
    skipped: int = 0  # rows of a nonsubscribed export: never on the list


def parse_import(path: Path, data: bytes, known_tags: Collection[str], *,
                 format: Format | None = None, limits: Limits = DEFAULT_LIMITS) -> Parsed:
    """Every row of *data* (a ZIP or one CSV, *path* only names it) checked; *format* None:
    detected. Raises SubscribersUnreadable when the file cannot be used at all."""
    if len(data) > limits.subscribers_bytes:
        raise SubscribersUnreadable(Problem(
            path, None, f"the file is over {limits.subscribers_bytes:,} bytes",
            "raise limits.subscribers_bytes in config.yaml if it really is that long"))
    reader = _Reader(known_tags, limits)
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        if format == "csv":
            raise SubscribersUnreadable(Problem(path, None, "this is a ZIP file, not a CSV",
                                                "use --format mailchimp, or unpack it"))
        for name, text in _unzipped(path, data, limits, reader.warnings):
            reader.read(path / name, text, "mailchimp")
        return reader.parsed("mailchimp")
    text = _decoded(path, data, reader.warnings)
    chosen = format or _detect(path, text)
    reader.read(path, text, chosen)
    return reader.parsed(chosen)


def _unzipped(path: Path, data: bytes, limits: Limits,
              warnings: list[Problem]) -> list[tuple[str, str]]:
    """(member name, text) of the CSVs in the ZIP, cleaned and unsubscribed first; the
    unpacked bytes are bounded as the file is, whatever the ZIP's headers claim."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
        if len(infos) > ZIP_ENTRIES:
            raise SubscribersUnreadable(Problem(
                path, None, f"the ZIP holds {len(infos):,} files; a Mailchimp export has 3",
                "unpack it and import the CSV files one by one"))
        csvs = [i for i in infos if not i.is_dir() and i.filename.lower().endswith(".csv")
                and not i.filename.startswith("__MACOSX/")]
        order = {"cleaned": 0, "unsubscribed": 1}
        csvs.sort(key=lambda i: order.get(_named_status(i.filename) or "", 2))
        budget, found = limits.subscribers_bytes, []
        for info in csvs:
            with archive.open(info) as member:
                raw = member.read(budget + 1)
            budget -= len(raw)
            if budget < 0:
                raise SubscribersUnreadable(Problem(
                    path, None, f"the ZIP unpacks to over {limits.subscribers_bytes:,} bytes",
                    "raise limits.subscribers_bytes in config.yaml if it really is that long"))
            name = info.filename
            found.append((name, _decoded(path / name, raw, warnings)))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            EOFError, ValueError, OSError) as exc:  # damaged, encrypted, unknown compression
        raise SubscribersUnreadable(Problem(path, None, f"cannot read the ZIP: {exc}",
                                            "export the audience again")) from None
    if not found:
        raise SubscribersUnreadable(Problem(path, None, "the ZIP holds no CSV file",
                                            "import Mailchimp's audience export ZIP"))
    return found


def _decoded(path: Path, raw: bytes, warnings: list[Problem]) -> str:
    """UTF-8 (a BOM is fine), UTF-16 with its BOM, else Windows-1252 with a warning."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in raw:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError:
                pass
            else:
                warnings.append(Problem(
                    path, line, "not UTF-8: read as Windows-1252 (this is its first line "
                    "that is not UTF-8); rows whose address is not ASCII are rejected",
                    "check the names came out right, or save the file as UTF-8"))
                return text
    raise SubscribersUnreadable(Problem(path, None, "not a text file: it is neither UTF-8 "
                                        "nor Windows-1252 text", "save the file as CSV, UTF-8"))


def _detect(path: Path, text: str) -> Format:
    """mailchimp when the file is named or laid out as Mailchimp writes its exports."""
    if _EXPORT_NAME.match(path.name):
        return "mailchimp"
    try:
        with _field_limit(FIELD_CHARS):
            first = next(csv.reader(io.StringIO(text.lstrip(), newline="")), [])
    except csv.Error:  # the read says where
        return "csv"
    header = {h.strip().casefold() for h in first}
    return "mailchimp" if header & _MAILCHIMP_ONLY else "csv"


def _named_status(name: str) -> str | None:
    found = _EXPORT_NAME.match(Path(name).name)
    return found.group(1).lower() if found else None


@contextmanager
def _field_limit(chars: int) -> Iterator[None]:
    """csv's field limit is global to the process: set for this parse, then put back."""
    before = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(before)


class _Reader:
    """Reads one CSV after another into one result, so a duplicate is found across files."""

    def __init__(self, known_tags: Collection[str], limits: Limits) -> None:
        self.known = {t.casefold(): t for t in known_tags}
        self.limits = limits
        self.records: list[Record] = []
        self.rejected: list[Problem] = []
        self.warnings: list[Problem] = []
        self.first: dict[str, tuple[Path, int]] = {}
        self.unknown: dict[str, tuple[str, Path, int, int]] = {}  # as written, where, uses
        self.skipped = 0

    def parsed(self, format: Format) -> Parsed:
        return Parsed(format, tuple(self.records), tuple(self.rejected),
                      tuple(self.warnings) + tuple(self._unknown_tags()), self.skipped)

    def read(self, path: Path, text: str, format: Format) -> None:
        with _field_limit(FIELD_CHARS):
            self._count(path, text)
            rows = csv.reader(io.StringIO(text, newline=""))
            try:
                header = self._header(path, rows, format)
                status = self._status(path, header, format)
                before = rows.line_num
                for row in rows:
                    line, before = before + 1, rows.line_num  # a quoted field may span lines
                    if any(cell.strip() for cell in row):
                        if status == "nonsubscribed":
                            self.skipped += 1
                        else:
                            self._row(path, line, dict(zip(header, row, strict=False)), status,
                                      format)
            except csv.Error as exc:
                raise SubscribersUnreadable(Problem(path, rows.line_num, f"not CSV: {exc}",
                                                    "save the file as CSV")) from None

    def _count(self, path: Path, text: str) -> None:
        """Every row counted before any is checked, so a huge file is refused at once."""
        rows = csv.reader(io.StringIO(text, newline=""))
        try:
            for count, _ in enumerate(rows):
                if count > ROWS:  # the header is row 0
                    raise SubscribersUnreadable(Problem(
                        path, rows.line_num, f"over {ROWS:,} rows",
                        "split the file, and import the parts one by one"))
        except csv.Error as exc:
            raise SubscribersUnreadable(Problem(path, rows.line_num, f"not CSV: {exc}",
                                                "save the file as CSV")) from None

    def _header(self, path: Path, rows: Any, format: Format) -> list[str]:
        """The first row that is not blank, casefolded; *rows*: csv's reader (its type is
        private)."""
        for row in rows:
            if any(cell.strip() for cell in row):
                header = [cell.strip().casefold() for cell in row]
                break
        else:
            raise SubscribersUnreadable(Problem(path, None, "the file is empty",
                                                "export the audience again"))
        if not any(n in header for n in _EMAIL_COLUMNS):
            want = "'Email Address'" if format == "mailchimp" else "'email'"
            raise SubscribersUnreadable(Problem(
                path, rows.line_num, f"no {want} column in the first row",
                "the first row must name the columns" + (
                    "; is this a Mailchimp audience export? if not, use --format csv"
                    if format == "mailchimp" else "")))
        column = next(n for n in _EMAIL_COLUMNS if n in header)
        header[header.index(column)] = "email"
        return header

    def _status(self, path: Path, header: list[str], format: Format) -> str | None:
        """A Mailchimp file's status, by its name or else its columns; None: per row, from
        the status column. A CSV without one is taken as Mailchimp's too, so that its
        unsubscribed export read with --format csv is never taken as subscribed."""
        if format == "csv" and "status" in header:
            return None
        named = _named_status(path.name)
        if named is not None:
            return named
        if "unsub_time" in header:
            return "unsubscribed"
        return "cleaned" if "clean_time" in header else "subscribed"

    def _row(self, path: Path, line: int, row: dict[str, str], status: str | None,
             format: Format) -> None:
        def reject(message: str, fix: str) -> None:
            self.rejected.append(Problem(path, line, message, fix))

        address = row.get("email", "").strip()
        if not address:
            return reject("no address in this row", "fill in the email column, or remove "
                          "the row")
        email, message, _fix = check_address(address)
        if email is None:
            return reject(message, "write only the address in this column; the name has its "
                          "own" if "<" in address else "correct the address, or remove the row")
        if not address.isascii() and self._misread(path):
            return reject(f"address '{address}' is not ASCII, and the file is not UTF-8, "
                          "so it may have been misread", "save the file as UTF-8")
        taken: Status | None = _STATUSES.get(status or "")
        if status is None:
            written = row.get("status", "").strip()
            taken = _STATUSES.get(written.casefold() or "subscribed")
            if taken is None:
                return reject(f"unknown status '{written}'", did_you_mean(
                    written.casefold(), _STATUSES))
        name = _name(row)
        bad = control_character(name or "")
        if bad is not None:
            return reject(f"the name contains the control character U+{ord(bad):04X}",
                          "write the name on one line, without control characters")
        if name is not None and len(name) > NAME_CHARS:
            return reject(f"the name is over {NAME_CHARS} characters", "shorten the name")
        tags, problem = self._tags(row.get("tags", ""))
        if problem:
            return reject(problem, "shorten or remove the tags in this row")
        key = email.lower()
        if key in self.first:
            where, at = self.first[key]
            other = f"line {at}" if where == path else f"{where}:{at}"
            return reject(f"'{address}' is already at {other}", "remove one of the two rows")
        self.first[key] = (path, line)
        for tag in tags or ():
            self._note_unknown(tag, path, line)
        assert taken is not None
        reason = _reason(row, taken, format, path)
        self.records.append(Record(email, name, tags, taken, reason, path, line))

    def _misread(self, path: Path) -> bool:
        return any(w.path == path and w.message.startswith("not UTF-8") for w in self.warnings)

    def _tags(self, cell: str) -> tuple[tuple[str, ...] | None, str]:
        """Mailchimp's `"a","b"` or a plain `a, b`; (None, "") when there are none."""
        cell = cell.strip()
        if not cell:
            return None, ""
        if cell.startswith('"'):
            items = next(csv.reader([cell], skipinitialspace=True), [])
        else:
            items = cell.split(",")
        seen: dict[str, str] = {}
        for item in items:
            tag = item.strip()
            if len(tag) > self.limits.tag_length or control_character(tag):
                return None, (f"a tag is over {self.limits.tag_length} characters or has a "
                              "control character")
            if tag:
                seen.setdefault(tag.casefold(), tag)
        if len(seen) > self.limits.tags:
            return None, f"over {self.limits.tags:,} tags"
        return tuple(seen.values()) or None, ""

    def _note_unknown(self, tag: str, path: Path, line: int) -> None:
        folded = tag.casefold()
        if folded in self.known:
            return
        written, where, at, uses = self.unknown.get(folded, (tag, path, line, 0))
        self.unknown[folded] = (written, where, at, uses + 1)

    def _unknown_tags(self) -> Iterator[Problem]:
        """One warning per tag no post has, at its first row: still imported (a new tag may
        have no posts yet), but a Mailchimp tag is often a segment, not a topic."""
        for folded, (tag, path, line, uses) in self.unknown.items():
            close = difflib.get_close_matches(folded, list(self.known), n=1, cutoff=0.6)
            hint = (f"did you mean '{self.known[close[0]]}'?" if close else
                    "if it is not a topic of the posts, remove it from the file's tags: "
                    "a subscriber with tags gets only posts with one of them")
            rows = "1 row" if uses == 1 else f"{uses} rows"
            yield Problem(path, line, f"no post has the tag '{tag}' (in {rows}, still "
                          "imported)", hint)


def _name(row: dict[str, str]) -> str | None:
    name = row.get("name", "").strip()
    if not name:
        name = " ".join(p for p in (row.get("first name", "").strip(),
                                    row.get("last name", "").strip()) if p)
    return name or None


def _reason(row: dict[str, str], status: str, format: Format, path: Path) -> str:
    """Why the address is suppressed, in words `digest subscribers show` can print."""
    if status == "subscribed":
        return ""
    if format == "csv":
        written = row.get("status", "").strip().casefold() or status
        return _clean(f"{written} (imported from {path.name})")
    if status == "unsubscribed":
        details = [row.get("unsub_time", "").strip()[:10]]
        why = row.get("unsub_reason", "").strip()
        other = row.get("unsub_reason_other", "").strip()
        if why or other:
            details.append("reason: " + ": ".join(p for p in (why, other) if p))
        title = row.get("unsub_campaign_title", "").strip()
        if title:
            details.append(f"campaign: {title}")
        return _clean("unsubscribed in Mailchimp (" + ", ".join(d for d in details if d) + ")")
    details = ["bounced", row.get("clean_time", "").strip()[:10]]
    return _clean("cleaned in Mailchimp (" + ", ".join(d for d in details if d) + ")")


def _clean(text: str) -> str:
    """One line, bounded: the reason is shown wherever the suppression is."""
    text = " ".join("".join(" " if control_character(c) else c for c in text).split())
    text = text.replace(" ()", "")
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"
