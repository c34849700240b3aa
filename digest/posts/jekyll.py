"""Jekyll 4.3's rules for posts, as pure functions: names, dates, titles, tags, permalinks.

Each function cites the Jekyll code it follows (lib/jekyll/...), because "what Jekyll does"
is the specification: where a rule looks odd, it is odd in Jekyll too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

# document.rb DATE_FILENAME_MATCHER
DATE_FILENAME = re.compile(r"^(?:.+/)*?(\d{2,4}-\d{1,2}-\d{1,2})-([^/]*)(\.[^./]+)$")
# a file that starts like a post but is not one: worth a warning, Jekyll skips it silently
LOOKS_DATED = re.compile(r"^(?:.+/)*?\d{2,4}-\d{1,2}-\d{1,2}")

# configuration.rb style_to_permalink
PERMALINK_STYLES = {
    "pretty": "/:categories/:year/:month/:day/:title/",
    "none": "/:categories/:title:output_ext",
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
}


class YamlTimestamp(str):
    """A plain (unquoted) YAML timestamp: Psych reads one without a zone as UTC."""

    __slots__ = ()


class DateError(ValueError):
    """A date Jekyll would misread (2019-02-30 becomes March 2) or cannot read at all."""


def titleize_slug(slug: str) -> str:
    """utils.rb titleize_slug: Ruby's String#capitalize on every dash-separated word."""
    return " ".join(w[:1].upper() + w[1:].lower() for w in slug.split("-"))


_SLUG_PRETTY_KEEP = set("._~!$&'()+,;=@")
# the same rules for ASCII text, where letters are [A-Za-z] and digits [0-9]: one regex pass
_ASCII_DROP = {False: re.compile(r"[^A-Za-z0-9]+"),
               True: re.compile(r"[^A-Za-z0-9._~!$&'()+,;=@]+")}


def slugify(text: str, *, pretty: bool = False, cased: bool = False) -> str:
    """utils.rb slugify in 'default' and 'pretty' modes (letters, marks, digits kept)."""
    slug = _ASCII_DROP[pretty].sub("-", text) if text.isascii() else _slug_unicode(text, pretty)
    slug = slug[1:] if slug.startswith("-") else slug
    slug = slug[:-1] if slug.endswith("-") else slug
    return slug if cased else slug.lower()


def _slug_unicode(text: str, pretty: bool) -> str:
    out: list[str] = []
    dash = False
    for ch in text:
        cat = unicodedata.category(ch)
        keep = cat[0] in "LM" or cat == "Nd" or (pretty and ch in _SLUG_PRETTY_KEEP)
        if keep:
            out.append(ch)
            dash = False
        elif not dash:
            out.append("-")
            dash = True
    return "".join(out)


_PLAIN_PATH = re.compile(r"[a-zA-Z0-9./-]+")
_SLASHES = re.compile(r"/{2,}")


def escape_path(path: str) -> str:
    """url.rb escape_path: Addressable::URI.encode, then '#' as %23."""
    if not path or _PLAIN_PATH.fullmatch(path):
        return path
    return quote(path, safe="/:@!$&'()*+,;=-._~?").replace("#", "%23")


def sanitize_url(url: str) -> str:
    """url.rb sanitize_url: no '..' traversal, no './', no doubled slashes."""
    result = ("/" + url).replace("..", "/").replace("./", "")
    return _SLASHES.sub("/", result)


_PLACEHOLDER = re.compile(r":([a-z_]+)")


@lru_cache(maxsize=64)
def _split_template(template: str) -> tuple[str, ...]:
    """A permalink pattern as alternating literal text and placeholder names (parsed once)."""
    return tuple(_PLACEHOLDER.split(template))


def build_url(template: str, placeholders: Mapping[str, str]) -> str:
    """url.rb generate_url_from_drop: ':name' replaced (':name_' too), then squeezed."""
    parts = _split_template(template)
    out = [parts[0]]
    for index in range(1, len(parts), 2):
        name, literal = parts[index], parts[index + 1]
        if name in placeholders:
            winner = name
        elif name.endswith("_") and name[:-1] in placeholders:
            winner = name[:-1]
        else:
            raise ValueError(f"the permalink '{template}' uses the unknown placeholder ':{name}'")
        out.append(escape_path(placeholders[winner]) + name[len(winner):] + literal)
    return sanitize_url(_SLASHES.sub("/", "".join(out)))


_SIMPLE_DATE: dict[str, Callable[[datetime], str]] = {
    "year": lambda d: f"{d.year:04d}", "month": lambda d: f"{d.month:02d}",
    "day": lambda d: f"{d.day:02d}", "hour": lambda d: f"{d.hour:02d}",
    "minute": lambda d: f"{d.minute:02d}", "second": lambda d: f"{d.second:02d}",
    "i_day": lambda d: str(d.day), "i_month": lambda d: str(d.month),
    "short_month": lambda d: d.strftime("%b"), "long_month": lambda d: d.strftime("%B"),
    "short_year": lambda d: d.strftime("%y"), "w_year": lambda d: str(d.isocalendar()[0]),
    "week": lambda d: f"{d.isocalendar()[1]:02d}", "w_day": lambda d: str(d.isoweekday()),
    "short_day": lambda d: d.strftime("%a"), "long_day": lambda d: d.strftime("%A"),
    "y_day": lambda d: d.strftime("%j"),
}


class UrlDrop(Mapping[str, str]):
    """drops/url_drop.rb: the values a permalink pattern can use, computed only when used."""

    def __init__(self, date: datetime, slug: str, categories: list[str], output_ext: str,
                 basename: str) -> None:
        self.date, self.slug, self.categories = date, slug, categories
        self.output_ext, self.basename = output_ext, basename

    def _value(self, key: str) -> str:
        d = self.date
        simple = _SIMPLE_DATE.get(key)
        if simple is not None:
            return simple(d)
        if key == "title":
            return slugify(self.slug, pretty=True, cased=True)
        if key == "slug":
            return slugify(self.slug)
        if key == "name":
            return slugify(self.basename)
        if key == "path":
            return self.basename
        if key == "output_ext":
            return self.output_ext
        if key == "collection":
            return "posts"
        if key == "categories":
            return "/".join(dict.fromkeys(c.lower() for c in self.categories))
        return "/".join(dict.fromkeys(slugify(c) for c in self.categories))

    _KEYS = (*_SIMPLE_DATE, "collection", "path", "output_ext", "name", "title", "slug",
             "categories", "slugified_categories")

    def __getitem__(self, key: str) -> str:
        if key not in self._KEYS:
            raise KeyError(key)
        return self._value(key)

    def __contains__(self, key: object) -> bool:
        return key in self._KEYS

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)


def permalink_template(style: str) -> str:
    return PERMALINK_STYLES.get(style, style)


_DATE_RE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt]|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:\s*(Z|UTC|GMT|[+-]\d{1,2}(?::?\d{2})?)(?![\d:]))?)?"
    r"(.*?)\s*$"
)


# Dates outside these years are refused: near year 1 or 9999 a zone shift or a digest period
# leaves what datetime can hold, and no post is dated there (a typo for 2019, or an attack).
EARLIEST_YEAR, LATEST_YEAR = 1000, 9000


def _zone(token: str) -> timezone:
    if token in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if token[0] == "-" else 1
    digits = token[1:].replace(":", "")
    hours, minutes = (int(digits), 0) if len(digits) <= 2 else (int(digits[:-2]), int(digits[-2:]))
    if minutes > 59 or hours > 23:
        raise DateError(f"the zone '{token}' is not an offset from UTC (hours 0-23, "
                        "minutes 0-59)")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _in_range(text: str, year: int) -> None:
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise DateError(f"'{text}' is in the year {year}; dates must be between "
                        f"{EARLIEST_YEAR} and {LATEST_YEAR}")


def parse_date(value: Any, tz: ZoneInfo) -> tuple[datetime, str]:
    """utils.rb parse_date (Time.parse(value.to_s).localtime) for the forms people write.

    A naive time is in the site timezone, except an unquoted YAML timestamp with seconds,
    which Psych reads as UTC before Jekyll ever sees it. A zone counts only right after the
    time, as in Ruby's Date._parse; trailing numbers are ignored, and returned so the caller
    can warn about them.
    """
    text = str(value)
    match = _DATE_RE.match(text)
    if not match:
        raise DateError(f"'{text}' is not a date; write it as YYYY-MM-DD or "
                        "YYYY-MM-DD HH:MM:SS +/-HHMM")
    year, month, day, hour, minute, second, frac, zone_text, rest = match.groups()
    rest = rest.strip()
    if rest and not re.fullmatch(r"[\d\s:+-]*", rest):
        raise DateError(f"'{text}' has '{rest}' after the date, which is not a time or zone")
    _in_range(text, int(year))
    try:
        naive = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0), int((frac or "0")[:6].ljust(6, "0")))
    except ValueError as exc:
        raise DateError(f"'{text}' is not a real date ({exc}); Jekyll would silently "
                        "roll it over into the next month") from None
    zone = _zone(zone_text) if zone_text else None
    if zone is None and isinstance(value, YamlTimestamp) and second is not None:
        zone = UTC
    if zone is None:
        return naive.replace(tzinfo=tz), rest
    return naive.replace(tzinfo=zone).astimezone(tz), rest


def filename_date(text: str, tz: ZoneInfo) -> datetime:
    """The date in a post's file name, at midnight in the site timezone."""
    year, month, day = (int(p) for p in text.split("-"))
    if year < 100:  # Time.parse reads a two-digit year as 19xx/20xx like strptime's %y
        year += 2000 if year < 69 else 1900
    _in_range(text, year)
    try:
        return datetime(year, month, day, tzinfo=tz)
    except ValueError as exc:
        raise DateError(f"the file name's date {text} does not exist ({exc})") from None


def pluralized(data: dict[str, Any], singular: str, plural: str) -> list[Any]:
    """utils.rb pluralized_array_from_hash: the singular key wins; a plural string splits."""
    value: Any = data.get(singular) if singular in data else None
    if value is None and plural in data:
        raw = data[plural]
        value = raw.split() if isinstance(raw, str) else (
            [v for v in raw if v is not None] if isinstance(raw, list) else None)
    return [v for v in _flatten([value]) if v is not None]


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def categories_of(data: dict[str, Any]) -> list[str]:
    """document.rb merge_categories! + populate_categories (strings split, deduplicated)."""
    raw = data.get("categories")
    first = raw.split() if isinstance(raw, str) else raw
    merged = [first] if first is not None and not isinstance(first, list) else (first or [])
    items = merged + pluralized(data, "category", "categories")
    return list(dict.fromkeys(ruby_to_s(v) for v in _flatten(items)))


def tags_of(data: dict[str, Any]) -> list[Any]:
    """document.rb populate_tags: numbers stay numbers, nesting is flattened."""
    return pluralized(data, "tag", "tags")


def ruby_to_s(value: Any) -> str:
    """How Ruby prints a YAML scalar: true/false lower-case, nil as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
# a URL that quoting and %-decoding leave as it is (no '%', nothing quote() escapes)
_PLAIN = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~?#-]*")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, which Addressable's normalize applies."""
    out: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) if out and out[0] == "" else "/" + "/".join(out)


def absolute_url(root: str, url: str) -> str:
    """filters/url_filters.rb absolute_url: site url + baseurl + url, normalised.

    Normalising decodes %-escaped unreserved characters and resolves dot segments, so a
    permalink like /%2e%2e/x.html can never point outside the site.
    """
    if not url.startswith("/"):
        return url
    origin, base = _split_root(root)
    if _PLAIN.fullmatch(url) and "/." not in base + url:
        return origin + base + url  # what the steps below give it, ~6x sooner (20,000 posts)
    path = quote(url, safe="/:@!$&'()*+,;=-._~%?#")
    path = _PCT.sub(lambda m: chr(int(m.group(1), 16)) if chr(int(m.group(1), 16)) in
                    _UNRESERVED else "%" + m.group(1).upper(), path)
    return origin + _remove_dot_segments(base + path)


@lru_cache(maxsize=8)
def _split_root(root: str) -> tuple[str, str]:
    """'https://a.example/base' → ('https://a.example', '/base')."""
    split = root.find("/", root.find("//") + 2) if "//" in root else -1
    return (root, "") if split < 0 else (root[:split], root[split:])
