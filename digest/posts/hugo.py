"""Hugo's rules for the pages of a content section, as pure functions: which files are
pages, their front matter (TOML, YAML or JSON), dates, terms and permalinks → a Post.

Written against Hugo 0.111 (Debian's) and checked against it by tests/test_hugo_parity.py:
where a rule looks odd, it is odd in Hugo too. Deliberate differences, for a feed and digest:

- a page with no date at all is refused (Hugo dates it 0001-01-01);
- a draft, an expired page, and one Hugo does not render or list (`_build`, `headless`) are
  unpublished;
- a publishDate later than the date becomes the post's date, so the post is held until then
  and lands in that week's digest (Hugo keeps .Date and only holds the page back);
- an expiryDate is judged when the file is read, against the clock then; the reading keeps
  it (Post.expires), and reader.refresh reads a page again once its expiryDate has passed,
  so a build (or the daemon's next rebuild) after that moment unpublishes it;
- the excerpt is the front matter's `summary`, else its `description`, else the body up to
  `<!--more-->`, else its first paragraph (Hugo's automatic summary counts 70 words).
"""

from __future__ import annotations

import calendar
import html
import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

import yaml
from frontmatter.default_handlers import BaseHandler, YAMLHandler

from ..config import DEFAULT_LIMITS, HugoSite, Limits, Site
from ..errors import PostError, Problem
from ..util.yamlsource import BoundedLoader, key_lines, load_bounded, yaml_problem
from .parse import Post, _decode

PAGE_EXTS = (".md", ".markdown", ".html", ".htm")
INDEX_NAMES = tuple(f"index{ext}" for ext in PAGE_EXTS)
MORE = "<!--more-->"


class TomlHandler(BaseHandler):
    """python-frontmatter's TOML boundary (`+++`), loaded with the standard library's tomllib
    (python-frontmatter's own TOML handler needs the unmaintained `toml` package)."""

    FM_BOUNDARY = re.compile(r"^\+{3,}\s*$", re.MULTILINE)
    START_DELIMITER = END_DELIMITER = "+++"


# python-frontmatter finds and splits TOML and YAML front matter; each is loaded here,
# bounded and with its line numbers. JSON is split by the JSON parser itself (split_front):
# python-frontmatter wants '{' and '}' alone on their lines, Hugo does not.
HANDLERS: tuple[tuple[str, BaseHandler], ...] = (
    ("TOML", TomlHandler()), ("YAML", YAMLHandler()))


class HugoLoader(BoundedLoader):
    """YAML as Hugo's loader gives it to the date rules: timestamps stay text."""


HugoLoader.add_constructor("tag:yaml.org,2002:timestamp",
                           lambda loader, node: loader.construct_scalar(node))


def pages(stats: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Of every file in the section, those that are pages: content files, not resources of
    a leaf bundle (a folder with an index.md: the index is the page, the rest belongs to it).
    Names the scan could not use (a negative size) are kept, so they are reported."""
    bundles = {rel.rpartition("/")[0] for rel in stats
               if rel.rpartition("/")[2].lower() in INDEX_NAMES and "/" in rel}
    found = {}
    for rel, stat in stats.items():
        folder = rel.rpartition("/")[0]
        owner = next((b for b in bundles if folder == b or folder.startswith(b + "/")), None)
        if owner is not None and rel != owner + "/" + rel.rpartition("/")[2]:
            continue  # a file in a bundle's subfolder: a resource
        if owner is not None and rel.rpartition("/")[2].lower() not in INDEX_NAMES:
            continue  # a resource beside the index
        if stat[0] < 0 or PurePosixPath(rel).suffix.lower() in PAGE_EXTS:
            found[rel] = stat
    return found


def split_front(path: Path, text: str,
                limits: Limits) -> tuple[dict[str, Any], str, dict[str, int]]:
    """(front matter with keys lowercased as Hugo reads them, the body, the line of each
    top-level key). The front matter text keeps its lines: line N of it is the file's."""
    if text.startswith("{"):  # JSON: Hugo reads the object to its closing brace, laid out
        return _json_front(path, text)  # any way ('{"title": "x"}' on one line too)
    for name, handler in HANDLERS:
        if not handler.detect(text):
            continue
        try:
            front, body = handler.split(text)
        except ValueError:
            raise PostError(Problem(
                path, 1, f"{name} front matter opened on line 1 is never closed",
                f"close it with a line '{handler.END_DELIMITER or '}'}'")) from None
        return _load(path, name, front, limits), body, _front_lines(name, front)
    return {}, text, {}


def _json_front(path: Path, text: str) -> tuple[dict[str, Any], str, dict[str, int]]:
    try:
        data, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        raise PostError(Problem(path, exc.lineno, f"invalid JSON front matter: {exc.msg}",
                                "check commas, quotes and the closing '}'")) from None
    except RecursionError:
        raise PostError(Problem(path, 1, "the JSON front matter nests too deep")) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise PostError(Problem(path, 1, "the JSON front matter has a value that cannot "
                                f"be read ({str(exc)[:100]})", "quote it as text")) from None
    if not isinstance(data, dict):
        raise PostError(Problem(path, 1, "JSON front matter must be an object",
                                'write e.g. {"title": "My post"}'))
    return ({str(k).lower(): v for k, v in data.items()}, text[end:],
            _front_lines("JSON", text[:end]))


def _load(path: Path, name: str, front: str, limits: Limits) -> dict[str, Any]:
    if len(front) > limits.post_bytes:  # already bounded by the file's size: belt and braces
        raise PostError(Problem(path, 1, "the front matter is too large"))
    try:
        if name == "YAML":
            data = load_bounded(front, HugoLoader, limits.yaml_nodes)
        elif name == "TOML":
            data = tomllib.loads(front)
        else:
            data = json.loads(front)
    except yaml.YAMLError as exc:
        raise PostError(yaml_problem(path, exc, text=front)) from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise PostError(Problem(path, int(found.group(1)) if found else None,
                                f"invalid TOML front matter: {message}",
                                "check quotes and brackets on that line")) from None
    except json.JSONDecodeError as exc:
        raise PostError(Problem(path, exc.lineno, f"invalid JSON front matter: {exc.msg}",
                                "check commas and quotes on that line")) from None
    except RecursionError:
        raise PostError(Problem(path, 1, f"the {name} front matter nests too deep",
                                "flatten it: front matter is a few keys")) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise PostError(Problem(path, 1, f"the {name} front matter has a value that "
                                f"cannot be read ({str(exc)[:100]})",
                                "shorten it, or quote it as text")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PostError(Problem(path, 2, f"front matter is a {type(data).__name__}, not "
                                "'key: value' lines", "write e.g. 'title: My post'"))
    return {str(k).lower(): v for k, v in data.items()}


def body_of(path: Path, raw: bytes) -> str:
    """The body of a page already read once (front matter skipped, not parsed again)."""
    text = _decode(path, raw)
    if text.startswith("{"):
        try:
            return text[json.JSONDecoder().raw_decode(text)[1]:]
        except (ValueError, RecursionError):  # not read as a page: never rendered
            return text
    for _, handler in HANDLERS:
        if handler.detect(text):
            try:
                return handler.split(text)[1]
            except ValueError:
                return text
    return text


# --- dates ----------------------------------------------------------------------------------

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_FRACTION = r"(?:[.,]\d{1,9})?"
_ZONE = r"(?P<zone>Z|[+-]\d{2}:?\d{2})"
# the spellings Hugo (spf13/cast StringToDateInDefaultLocation) accepts, as regexes
_SPELLINGS = [
    re.compile(rf"^(?P<y>\d{{4}})-(?P<m>\d{{2}})-(?P<d>\d{{2}})[T ](?P<H>\d{{2}}):(?P<M>\d{{2}})"
               rf":(?P<S>\d{{2}})(?P<f>{_FRACTION})\s?(?:{_ZONE})?(?:\s+[A-Z]{{3,5}})?$"),
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})$"),
    # RFC 1123 (with a numeric or named zone), RFC 850, RFC 822
    re.compile(rf"^(?:(?:{_DAYS})[a-z]*,\s+)?(?P<d>\d{{1,2}})[ -](?P<b>{_MONTHS})[ -]"
               rf"(?P<y>\d{{2,4}})\s+(?P<H>\d{{2}}):(?P<M>\d{{2}})(?::(?P<S>\d{{2}}))?"
               rf"(?P<f>{_FRACTION})\s+(?:{_ZONE}|(?P<name>[A-Z]{{3,5}}))$"),
    re.compile(rf"^(?P<d>\d{{2}}) (?P<b>{_MONTHS}) (?P<y>\d{{4}})$"),
    # ANSIC, UnixDate, RubyDate
    re.compile(rf"^(?:{_DAYS}) (?P<b>{_MONTHS}) +(?P<d>\d{{1,2}}) (?P<H>\d{{2}}):(?P<M>\d{{2}})"
               rf":(?P<S>\d{{2}})(?: (?:{_ZONE}|(?P<name>[A-Z]{{3,5}})))? (?P<y>\d{{4}})$"),
]
_MONTH_NUMBER = {name: number for number, name in enumerate(calendar.month_abbr) if name}


class HugoDateError(ValueError):
    """A date Hugo cannot read (it stops the build)."""


def parse_date(value: Any, tz: tzinfo) -> datetime:
    """A front matter date as Hugo reads it: aware, in its own offset, or in *tz* (the
    site's timeZone) when it has none. TOML gives datetimes and dates; YAML and JSON text."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(), tz)
    if not isinstance(value, str) or len(value) > 64:
        raise HugoDateError(f"'{str(value)[:64]}' is not a date")
    text = value.strip()
    for spelling in _SPELLINGS:
        match = spelling.match(text)
        if match is not None:
            return _from_match(match, tz, text)
    raise HugoDateError(f"'{text}' is not a date Hugo can read (it would date the page "
                        "0001-01-01)")


def _from_match(match: re.Match[str], tz: tzinfo, text: str) -> datetime:
    parts = match.groupdict()
    year = int(parts["y"])
    year = year + 1900 if year >= 69 and year < 100 else year + 2000 if year < 100 else year
    month = int(parts["m"]) if parts.get("m") else _MONTH_NUMBER[parts["b"]]
    fraction = (parts.get("f") or "")[1:]
    micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
    zone: tzinfo = tz
    if parts.get("zone"):
        raw = parts["zone"]
        if raw == "Z":
            zone = UTC
        else:
            sign = -1 if raw[0] == "-" else 1
            digits = raw[1:].replace(":", "")
            zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    # a named zone only (MST, GMT): cast reads the wall time in the site's timeZone
    try:
        return datetime(year, month, int(parts["d"]), int(parts.get("H") or 0),
                        int(parts.get("M") or 0), int(parts.get("S") or 0), micro, zone)
    except ValueError as exc:
        raise HugoDateError(f"'{text}': {exc}") from None


# Hugo's default [frontmatter] configuration: the keys each date is taken from, in order
DATE_KEYS = ("date", "publishdate", "pubdate", "published", "lastmod", "modified")
PUBLISH_KEYS = ("publishdate", "pubdate", "published", "date")
LASTMOD_KEYS = ("lastmod", "modified", "date", "publishdate", "pubdate", "published")
EXPIRY_KEYS = ("expirydate", "unpublishdate")


def _first_date(path: Path, data: dict[str, Any], keys: Iterable[str], tz: tzinfo,
                lines: dict[str, int]) -> datetime | None:
    for key in keys:
        value = data.get(key)
        if value in (None, "") or isinstance(value, bool):
            continue
        try:
            return parse_date(value, tz)
        except HugoDateError as exc:
            raise PostError(Problem(path, lines.get(key), f"'{key}': {exc}",
                                    "write e.g. 2023-06-13 or 2023-06-13T09:00:00-05:00")
                            ) from None
    return None


# --- URLs -----------------------------------------------------------------------------------

def _allowed(text: str, i: int, char: str) -> bool:
    """paths.isAllowedPathCharacter: letters, digits, marks and a few signs stay."""
    if char == " ":
        return False
    if char.isalpha() or char.isdigit() or char in "./\\_#~-@":
        return True
    if unicodedata.category(char).startswith("M"):
        return True
    return char == "%" and bool(re.match(r"[0-9A-Fa-f]{2}", text[i + 1:i + 3]))


def sanitize(text: str) -> str:
    """paths.Sanitize as Hugo 0.111 behaves (checked against it): spaces and '+' become
    one '-' (none next to a '-' already there), other disallowed characters are dropped."""
    if all(_allowed(text, i, c) for i, c in enumerate(text)):
        return text
    out: list[str] = []
    hyphen = False
    for i, char in enumerate(text):
        if _allowed(text, i, char):
            if hyphen and char != "-" and out[-1] != "-":
                out.append("-")
            hyphen = False
            out.append(char)
        elif out and (char.isspace() or char == "+"):
            hyphen = True
    return "".join(out)


def urlize(text: str) -> str:
    """PathSpec.URLize: sanitized, lowercased (per character, as Go: 'İ' → 'i'), then
    printed as Go's url.URL prints it: %XX decoded, the path escaped, and a '#' starting a
    fragment, kept, whose own '#'s are escaped."""
    lowered = unquote(sanitize(text)).replace("\u0130", "i").lower()
    path, hash_, fragment = lowered.partition("#")
    return quote(path, safe=_URL_SAFE) + hash_ + quote(fragment, safe=_URL_SAFE)


_URL_SAFE = "/~-@._!$&'()*,;=:+"


def _translation_base(name: str) -> str:
    return name.rpartition(".")[0] or name


def _filename(relpath: str) -> str:
    """:filename — the file's name without extension, or a bundle's folder name."""
    parts = relpath.split("/")
    name = _translation_base(parts[-1])
    if name.lower() == "index" and len(parts) > 1:
        name = parts[-2]
    return name


def _tokens(post_date: datetime, title: str, slug: str, relpath: str,
            hugo: HugoSite, nested: int) -> dict[str, str]:
    filename = urlize(_filename(relpath))
    slug_or = urlize(slug) if slug else ""
    folders = [*hugo.sections, *relpath.split("/")[:-1]]
    return {
        "year": f"{post_date.year}", "month": f"{post_date.month:02d}",
        "monthname": calendar.month_name[post_date.month].lower(),
        "day": f"{post_date.day:02d}", "weekday": f"{post_date.isoweekday() % 7}",
        "weekdayname": calendar.day_name[post_date.weekday()].lower(),
        "yearday": f"{post_date.timetuple().tm_yday}",
        "section": hugo.section,
        "sections": "/".join(folders[:len(hugo.sections) + nested]),
        "title": urlize(title), "slug": slug_or or urlize(title),
        "filename": filename, "contentbasename": filename,
        "slugorfilename": slug_or or filename, "slugorcontentbasename": slug_or or filename,
    }


_TOKEN = re.compile(r":(slugorcontentbasename|slugorfilename|contentbasename|filename|"
                    r"weekdayname|weekday|yearday|year|monthname|month|day|sections|"
                    r"section|title|slug)")


def nested_sections(root: Path, relpath: str) -> int:
    """How many of the page's folders below the section are sections themselves: Hugo makes
    a folder a section only if it has an _index.md (and its parent is one). Read from the
    disk when the page is read (the scan skips _index files): adding an _index.md later
    changes `:sections` only for pages read again."""
    folders = relpath.split("/")[:-1]
    if relpath.rpartition("/")[2].lower() in INDEX_NAMES:
        folders = folders[:-1]  # a bundle's folder is the page, not a section
    count = 0
    for depth in range(1, len(folders) + 1):
        here = root.joinpath(*folders[:depth])
        if not any((here / f"_index{ext}").is_file() for ext in PAGE_EXTS):
            break
        count += 1
    return count


def permalink(post_date: datetime, title: str, slug: str, relpath: str,
              hugo: HugoSite, nested: int = 0) -> str:
    """The page's URL (site-relative, without the baseURL's path) by the section's pattern,
    or Hugo's default: the page's folders below content/, then its slug or file name.
    *nested*: how many of its folders are sections (nested_sections)."""
    if not hugo.permalink:
        folders = [*hugo.sections, *relpath.split("/")[:-1]]
        if relpath.rpartition("/")[2].lower() in INDEX_NAMES:
            folders, last = folders[:-1], folders[-1]
        else:
            last = _translation_base(relpath.rpartition("/")[2])
        last = slug or last
        return "/" + "/".join(urlize(part) for part in [*folders, last]) + "/"
    values = _tokens(post_date, title, slug, relpath, hugo, nested)
    url = _TOKEN.sub(lambda m: values[m.group(1)], hugo.permalink)
    url = re.sub(r"/{2,}", "/", url)
    return url if url.startswith("/") else "/" + url


def url_override(url: str) -> str:
    """Front matter `url:` as Hugo uses it: site-relative, and a folder (a trailing '/')
    unless its last part has an extension (`/feed.html` stays a file)."""
    url = url.strip()
    url = url if url.startswith("/") else "/" + url
    last = url.rpartition("/")[2]
    return url if not last or "." in last else url + "/"


# --- a page → a Post ------------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _terms(path: Path, data: dict[str, Any], names: tuple[str, ...],
           lines: dict[str, int]) -> tuple[str, ...]:
    """A page's terms in *names* as its front matter writes them (Hugo's .Params, what
    themes print), exact repeats dropped. Hugo's taxonomy pages merge names that urlize
    alike ('Linkerd', 'linkerd') into one term with one site-wide spelling; digest keeps
    each spelling, so each gets its own feed (see README, Reading a Hugo site)."""
    found: list[str] = []
    for name in names:
        value = data.get(name)
        if value in (None, ""):
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, (dict, list)):
                raise PostError(Problem(path, lines.get(name), f"'{name}' holds a nested "
                                        "list or mapping", "list each term as text"))
            term = _text(item).strip()
            if term and term not in found:
                found.append(term)
    return tuple(found)


def _check_size(path: Path, raw: bytes, limits: Limits) -> None:
    if len(raw) > limits.post_bytes:
        raise PostError(Problem(path, None, f"the file is {len(raw):,} bytes (the most is "
                                f"{limits.post_bytes:,})", "split it, or raise "
                                "limits.post_bytes in config.yaml"))


def parse_hugo_post(path: Path, relpath: str, raw: bytes, site: Site,
                    limits: Limits = DEFAULT_LIMITS, now: datetime | None = None) -> Post:
    """Read one page of a Hugo section; raise PostError (with file and line) where Hugo
    would stop or publish nonsense. *now* judges expiryDate (see the module's docstring)."""
    hugo = site.hugo
    assert hugo is not None, "a Hugo page needs the site's Hugo settings"
    _check_size(path, raw, limits)
    text = _decode(path, raw)
    data, body, lines = split_front(path, text, limits)
    tz = site.tz
    own_date = _first_date(path, data, DATE_KEYS, tz, lines)
    publish = _first_date(path, data, PUBLISH_KEYS, tz, lines)
    _first_date(path, data, LASTMOD_KEYS, tz, lines)  # Hugo stops on a bad one: so do we
    expiry = _first_date(path, data, EXPIRY_KEYS, tz, lines)
    if own_date is None:
        raise PostError(Problem(path, None, "the page has no date (Hugo would date it "
                                "0001-01-01)", "add e.g. 'date: 2023-06-13' to its front "
                                "matter"))
    title = _text(data["title"]) if data.get("title") not in (None, "") else ""
    slug = _text(data["slug"]).strip() if data.get("slug") not in (None, "") else ""
    if data.get("url") not in (None, ""):
        url = url_override(_text(data["url"]))
    else:
        root = path.parents[relpath.count("/")] if "/" in relpath else path.parent
        nested = nested_sections(root, relpath) if "/" in relpath and \
            ":sections" in hugo.permalink else 0
        url = permalink(own_date, title, slug, relpath, hugo, nested)
    tags = _terms(path, data, hugo.tag_taxonomies, lines)
    categories = _terms(path, data, hugo.category_taxonomies, lines)
    if len(tags) + len(categories) > limits.tags or \
            any(len(t) > limits.tag_length for t in (*tags, *categories)):
        raise PostError(Problem(path, lines.get("tags"), "too many or too long tags and "
                                f"categories (the most is {limits.tags}, each of "
                                f"{limits.tag_length} characters)",
                                "shorten them, or raise limits.tags in config.yaml"))
    when = now or datetime.now(UTC)
    draft = data.get("draft") is True or str(data.get("draft")).lower() == "true"
    build = data["_build"] if isinstance(data.get("_build"), dict) else {}
    # `_build: {render: never}` (no page) or `{list: never}` (in no list), or a headless
    # bundle: nothing for a feed to list or link to
    unlisted = data.get("headless") is True or any(
        str(build.get(k)).lower() in ("never", "false") for k in ("render", "list"))
    expired = expiry is not None and expiry <= when
    shown = publish if publish is not None and publish > own_date else own_date
    excerpt = next((_text(data[k]) for k in ("summary", "description")
                    if data.get(k) not in (None, "")), None)
    author = data.get("author")
    name = relpath.rpartition("/")[2]
    return Post(
        path=relpath, date=shown.astimezone(tz), slug=slug or _filename(relpath),
        title=title, tags=tags, categories=categories, url=url,
        ext=name[name.rfind("."):] if "." in name else "",
        excerpt_separator=MORE if MORE in body else "\n\n",
        excerpt=excerpt, author=author if isinstance(author, str) and author.strip() else None,
        published=not draft and not expired and not unlisted, expires=expiry,
    )


def _front_lines(name: str, front: str) -> dict[str, int]:
    """The line of each top-level front matter key (lowercased), for error messages."""
    if name == "YAML":
        return {str(k[0]).lower(): v for k, v in key_lines(front).items() if len(k) == 1}
    found: dict[str, int] = {}
    for number, line in enumerate(front.split("\n"), start=1):
        match = re.match(r"""^\s*["']?([A-Za-z0-9_-]+)["']?\s*[=:]""", line)
        if match is not None:
            found.setdefault(match.group(1).lower(), number)
    return found


# --- rendering ------------------------------------------------------------------------------

_SHORTCODE = re.compile(r"{{([<%])\s*(/?)\s*([\w./-]+)(.*?)\s*[>%]}}", re.S)
_SHORTCODE_COMMENT = re.compile(r"{{([<%])\s*/\*(.*?)\*/\s*([>%])}}", re.S)
_ARG = re.compile(r"""(?:([\w-]+)=)?("(?:[^"\\]|\\.)*"|`[^`]*`|[^\s"`]+)""")


def _args(text: str) -> tuple[list[str], dict[str, str]]:
    """A shortcode's positional and named arguments, unquoted."""
    positional, named = [], {}
    for match in _ARG.finditer(text):
        value = match.group(2)
        if value[:1] in ('"', "`"):
            value = value[1:-1].replace('\\"', '"') if value[0] == '"' else value[1:-1]
        if match.group(1):
            named[match.group(1)] = value
        else:
            positional.append(value)
    return positional, named


def _builtin(name: str, args: str, post_urls: Mapping[str, str]) -> str:
    """What Hugo's built-in shortcodes come to in a feed or email; '' for the rest."""
    positional, named = _args(args)
    first = named.get("id") or named.get("path") or named.get("src") or \
        (positional[0] if positional else "")
    if name in ("ref", "relref"):  # a post of this section, by its file name
        stem = first.rstrip("/").rpartition("/")[2].partition("#")[0]
        stem = stem.rpartition(".")[0] if stem.endswith((".md", ".markdown", ".html")) else stem
        return post_urls.get(stem, "")
    if name == "youtube" and re.fullmatch(r"[\w-]{1,64}", first):
        url = f"https://www.youtube.com/watch?v={first}"
        return f'<a href="{url}">{url}</a>'
    if name == "figure" and first:
        alt = named.get("alt", "")
        caption = named.get("caption") or named.get("title") or ""
        img = f'<img src="{html.escape(first)}" alt="{html.escape(alt)}">'
        text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return f"<figure>{img}{text}</figure>"
    return ""


def tame_shortcodes(body: str, post_urls: Mapping[str, str] | None = None) -> str:
    """We do not run Hugo's templates. `ref`/`relref` become the URL of the post named (when
    it is among *post_urls*, file stem → URL), `youtube` a link to the video, `figure` the
    image; any other call is dropped and the text a paired one wraps is kept; a commented-out
    call (`{{</* x */>}}`) shows as written, as Hugo shows it."""
    urls = post_urls or {}
    shown: list[str] = []

    def keep(match: re.Match[str]) -> str:
        shown.append("{{" + match.group(1) + match.group(2) + match.group(3) + "}}")
        return f"\x00sc{len(shown) - 1}\x00"

    body = _SHORTCODE_COMMENT.sub(keep, body)
    body = _SHORTCODE.sub(lambda m: "" if m.group(2) else _builtin(m.group(3), m.group(4),
                                                                     urls), body)
    return re.sub(r"\x00sc(\d+)\x00", lambda m: shown[int(m.group(1))], body)
