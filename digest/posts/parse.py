"""One post file → a Post, or a Problem saying exactly what is wrong with it and where.

Pure: takes the file's relative path and bytes, returns data. Reading the folder, caching
and rendering live elsewhere (reader.py, content.py).
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ..config import DEFAULT_LIMITS, Limits, Site
from ..errors import PostError, Problem
from ..util.yamlsource import BoundedLoader, key_lines, load_bounded, yaml_problem
from . import jekyll
from .content import linked_posts, shape_problems
from .sources import is_source_key

# document.rb YAML_FRONT_MATTER_REGEXP (Ruby's ^ and $ are always line anchors, /m is DOTALL)
FRONT_MATTER = re.compile(r"\A(---\s*\n.*?\n?)^((?:---|\.\.\.)[ \t\r\f\v]*$\n?)", re.S | re.M)
OPENS_FRONT_MATTER = re.compile(r"\A---\s*\n")


class FrontMatterLoader(BoundedLoader):
    """Psych's reading of YAML for front matter: timestamps stay text (Jekyll parses them).

    Two shortcuts through PyYAML's own extension points, for a cold read of 20,000 posts:
    a plain string (most of any front matter) is returned as construct_yaml_str would,
    without the generic dispatch; and the implicit type of a short scalar ('union',
    'true', '2019-03-13') is resolved once per value, not by the regexes every time.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value
        return super().construct_object(node, deep)

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if kind is not yaml.ScalarNode or len(value) > 64:
            return str(super().resolve(kind, value, implicit))
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(_RESOLVED) < 4096:
                _RESOLVED[key] = tag
        return tag


_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVED: dict[tuple[str, Any], str] = {}  # FrontMatterLoader adds no resolvers of its own


FrontMatterLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: jekyll.YamlTimestamp(loader.construct_scalar(node)),
)


@dataclass(frozen=True)
class Post:
    """A post as Jekyll publishes it; the body is read again only when it must be rendered."""

    path: str  # relative to the posts folder, with '/' separators
    date: datetime  # aware, in the site timezone
    slug: str
    title: str  # as Jekyll has it (may hold HTML: themes print it raw)
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    url: str  # site-relative, as Jekyll's post.url
    ext: str
    excerpt_separator: str
    excerpt: str | None = None  # from front matter; None: cut from the body
    author: str | None = None
    published: bool = True
    # (file stem, line) of each post its body links to by name, in order (content.py)
    links: tuple[tuple[str, int], ...] = ()
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    expires: datetime | None = None  # Hugo's expiryDate: unpublished from then (reader.py)

    @property
    def linked(self) -> tuple[str, ...]:
        """The file stems of the posts it links to."""
        return tuple(stem for stem, _ in self.links)

    def broken_links(self, root: Path, published: Container[str]) -> list[Problem]:
        """Its links to a name no *published* post has."""
        return [broken_link(root / self.path, stem, line) for stem, line in self.links
                if stem not in published]

    @property
    def jekyll_id(self) -> str:
        """document.rb id: what jekyll-feed uses as the entry id, so switching keeps ids."""
        if is_source_key(self.path):  # a feed source's entry: its link, as the feed had it
            return self.url
        folder = self.url.rstrip("/").rpartition("/")[0]
        return f"{folder}/{self.slug}" if folder else f"/{self.slug}"


def broken_link(path: Path, stem: str, line: int) -> Problem:
    """A `{% post_url %}` naming no published post: Jekyll stops the build; we say where."""
    link = f"the link to '{stem}'" if stem else "a post_url or link tag with no post name"
    return Problem(path, line, f"{link} names no published post, so it is left empty "
                   "(Jekyll stops the whole build on it)",
                   "use that post's file name without the extension, or publish it")


@dataclass(frozen=True)
class Source:
    """The text of a post file split into front matter and body, with the body's first line."""

    data: dict[str, Any]
    body: str
    body_line: int
    front: str = ""  # the front matter block as written, '---' line included, for line numbers


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PostError(Problem(
            path, line, f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {column}",
            "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")) from None
    text = text.removeprefix("\ufeff")  # Jekyll reads with 'bom|utf-8'
    return text.replace("\r\n", "\n")


def _unclosed_hint(text: str) -> str:
    for number, line in enumerate(text.split("\n")[1:], start=2):
        if line.strip() in ("---", "...") and line.strip() != line.rstrip("\r"):
            return f"line {number} '{line}' looks meant to close it: remove the spaces"
        if re.match(r"^---+\S", line):
            return f"line {number} '{line}' looks meant to close it: make it '---'"
    return "add a line '---' after the last front matter key"


def body_of(path: Path, raw: bytes) -> str:
    """The body of a post already read once: the front matter is skipped, not parsed again."""
    text = _decode(path, raw)
    match = FRONT_MATTER.match(text)
    return text[match.end():] if match else text


def split_source(path: Path, raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Source:
    """Decode and split a post file the way Jekyll does, refusing what Jekyll gets wrong.

    The front matter is loaded bounded (util/yamlsource.py): aliases, nesting and numbers are
    checked before a value is built."""
    text = _decode(path, raw)
    if not text.strip():
        raise PostError(Problem(path, 1, "the file is empty",
                                "write front matter and content, or delete the file"))
    match = FRONT_MATTER.match(text)
    if match is None:
        if OPENS_FRONT_MATTER.match(text):
            raise PostError(Problem(
                path, 1, "front matter opened on line 1 is never closed "
                "(Jekyll would publish the whole file as an empty post)", _unclosed_hint(text)))
        return Source({}, text, 1, "")
    front = match.group(1)
    body_line = text.count("\n", 0, match.end()) + 1
    try:
        data = load_bounded(front, FrontMatterLoader, limits.yaml_nodes)
    except yaml.YAMLError as exc:
        raise PostError(yaml_problem(path, exc, text=front)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PostError(Problem(path, 2, f"front matter is a {type(data).__name__}, "
                                "not 'key: value' lines", "write e.g. 'title: My post'"))
    return Source({str(k): v for k, v in data.items()}, text[match.end():], body_line, front)


def name_problem(path: Path, relpath: str) -> Problem:
    """Why a file in the posts folder is not a post (Jekyll skips these without a word)."""
    name = PurePosixPath(relpath).name
    dated = re.match(r"^(\d{2,4}-\d{1,2}-\d{1,2})(.*)$", name)
    if dated and not dated.group(2).startswith("-"):
        fixed = f"{dated.group(1)}-{dated.group(2)}"
        return Problem(path, None, "no '-' between the date and the title in the file name, "
                       "so Jekyll ignores this post", f"rename it to {fixed}")
    if dated and "." not in dated.group(2):
        return Problem(path, None, "the file name has no extension, so Jekyll ignores "
                       "this post", f"rename it to {name}.md")
    return Problem(path, None, "not a post file name (YYYY-MM-DD-title.md), so Jekyll "
                   "ignores it", "rename it, or move it out of the posts folder")


def _key_line(front: str, key: str) -> int | None:
    return key_lines(front).get((key,)) if front else None


def _tag_warnings(path: Path, data: dict[str, Any], front: str) -> list[Problem]:
    warnings = []
    for key in ("tags", "tag", "categories", "category"):
        value = data.get(key)
        items = value if isinstance(value, list) else [value]
        odd = [v for v in items if isinstance(v, (int, float, list, dict)) and v is not True]
        if not odd:
            continue
        line = _key_line(front, key)
        if not isinstance(value, list) and key.startswith("tag"):
            msg = f"'{key}: {value}' is a number; Jekyll ignores it"
            hint = f"write {key}: ['{value}']"
        elif any(isinstance(v, (list, dict)) for v in odd):
            msg = f"'{key}' has a nested list or mapping; it is flattened"
            hint = "list each tag on its own line"
        else:
            msg = f"'{key}' has numbers ({', '.join(map(str, odd))}); they become text"
            hint = "quote them"
        warnings.append(Problem(path, line, msg, hint))
    return warnings


def _output_ext(ext: str, site: Site) -> str:
    converted = ext[1:].lower() in site.markdown_ext or ext.lower() in (".html", ".htm")
    return ".html" if converted else ext


def _check_terms(path: Path, data: dict[str, Any], front: str, terms: list[str],
                 limits: Limits) -> None:
    """Refuse a post whose tags and categories exceed the limits: each one costs a feed."""
    if len(terms) > limits.tags:
        key = next((k for k in ("tags", "tag", "categories", "category") if k in data), "tags")
        raise PostError(Problem(path, _key_line(front, key), f"{len(terms)} tags and "
                                f"categories (the most is {limits.tags})",
                                "keep the ones readers follow, or raise limits.tags "
                                "in config.yaml"))
    long = next((t for t in terms if len(t) > limits.tag_length), None)
    if long is not None:
        key = next((k for k in ("tags", "tag", "categories", "category")
                    if long in str(data.get(k))), "tags")
        raise PostError(Problem(path, _key_line(front, key), f"a tag or category of "
                                f"{len(long)} characters ('{long[:30]}…'; the most is "
                                f"{limits.tag_length})", "shorten it, or raise "
                                "limits.tag_length in config.yaml"))


def parse_post(path: Path, relpath: str, raw: bytes, site: Site,
               limits: Limits = DEFAULT_LIMITS) -> Post:
    """Read one post; raise PostError (with file and line) if Jekyll would publish garbage,
    or if it exceeds *limits*."""
    file_date, slug, ext = _file_name(path, relpath, raw, limits)
    source = split_source(path, raw, limits)
    data = source.data
    front = source.front
    slug = re.sub(r"\.*$", "", slug)
    date, ignored = _date(path, data, front, file_date, site)
    title = data.get("title")
    title = jekyll.ruby_to_s(title) if title not in (None, False) else jekyll.titleize_slug(slug)
    fm_slug = data.get("slug")
    slug = jekyll.ruby_to_s(fm_slug) if fm_slug not in (None, False) else slug
    categories = jekyll.categories_of(data)
    tags = tuple(jekyll.ruby_to_s(t) for t in jekyll.tags_of(data))
    _check_terms(path, data, front, [*tags, *categories], limits)
    basename = relpath.rpartition("/")[2]
    placeholders = jekyll.UrlDrop(date, slug, categories, _output_ext(ext, site),
                                  basename[: -len(ext)])
    url = _url(path, source, placeholders, site)
    if is_source_key(relpath):  # a feed source's entry (sources.py): its own address
        url = _source_link(path, data)
    warnings = _warnings(path, source, ext, site, ignored, title)
    excerpt = data.get("excerpt")
    separator = data.get("excerpt_separator")
    author = data.get("author")
    return Post(
        path=relpath, date=date, slug=slug, title=title, tags=tags,
        categories=tuple(categories), url=url, ext=ext,
        excerpt_separator=str(separator) if isinstance(separator, str) else site.excerpt_separator,
        excerpt=jekyll.ruby_to_s(excerpt) if excerpt not in (None, False) else None,
        author=author if isinstance(author, str) and author.strip() else None,
        published=data.get("published", True) not in (False, None),
        links=tuple((stem, source.body_line + line) for stem, line in
                    linked_posts(source.body)),
        warnings=tuple(warnings),
    )


def _source_link(path: Path, data: dict[str, Any]) -> str:
    """The absolute link poll.py wrote in a feed entry's file."""
    link = data.get("link")
    if not isinstance(link, str) or not link.startswith(("https://", "http://")):
        raise PostError(Problem(path, None, "a feed entry's file has no http(s) link",
                                "delete the file: the next fetch of its feed writes it again"))
    return link


def _file_name(path: Path, relpath: str, raw: bytes, limits: Limits) -> tuple[str, str, str]:
    """(the date, the slug, the extension) the file's name gives, if Jekyll reads it as a
    post at all and it is not too big."""
    match = jekyll.DATE_FILENAME.match(relpath)
    if match is None:
        raise PostError(name_problem(path, relpath))
    file_date, slug, ext = match.groups()
    if ext.lower() in (".yml", ".yaml"):
        raise PostError(Problem(path, None, "a .yml file in the posts folder is read by Jekyll "
                                "as data, not as a post", "rename it to .md if it is a post"))
    if len(raw) > limits.post_bytes:
        raise PostError(Problem(path, None, f"the file is {len(raw):,} bytes (the most is "
                                f"{limits.post_bytes:,})", "split it, or raise "
                                "limits.post_bytes in config.yaml"))
    return file_date, slug, ext


def _date(path: Path, data: dict[str, Any], front: str, file_date: str,
          site: Site) -> tuple[datetime, str]:
    """The post's date (the front matter's, else the file name's), and what Jekyll ignored
    after its time."""
    tz = site.tz
    try:
        if data.get("date") not in (None, False):
            return jekyll.parse_date(data["date"], tz)
        return jekyll.filename_date(file_date, tz), ""
    except jekyll.DateError as exc:
        line = _key_line(front, "date") if "date" in data else None
        raise PostError(Problem(path, line, str(exc), "fix the date, e.g. 2019-03-13 "
                                "or 2019-03-13 09:00:00 -0500")) from None


def _url(path: Path, source: Source, placeholders: jekyll.UrlDrop, site: Site) -> str:
    """The post's URL: its permalink, or the site's."""
    permalink = source.data.get("permalink")
    template = str(permalink) if isinstance(permalink, str) and permalink else \
        jekyll.permalink_template(site.permalink)
    try:
        return jekyll.build_url(template, placeholders)
    except ValueError as exc:
        raise PostError(Problem(path, _key_line(source.front, "permalink"), str(exc))) from None


def _warnings(path: Path, source: Source, ext: str, site: Site, ignored: str,
              title: str) -> list[Problem]:
    """What Jekyll publishes but not as the writer meant: tags, the body's shape, the date,
    the title."""
    data, front = source.data, source.front
    warnings = _tag_warnings(path, data, front)
    warnings.extend(shape_problems(path, source.body, source.body_line, ext, site.markdown_ext,
                                   jekyll.ruby_to_s(data["excerpt"]) if data.get("excerpt")
                                   not in (None, False) else None, site.kramdown))
    if ignored:
        warnings.append(Problem(path, _key_line(front, "date"), f"the date has '{ignored}' "
                                "after the time, which Jekyll ignores (a zone there is ignored "
                                "too)", "write the date as YYYY-MM-DD HH:MM:SS +/-HHMM"))
    if "\n" in title or "\r" in title:
        warnings.append(Problem(path, None, "the title has a line break; feeds and emails "
                                "show it as a space", "put the title on one line"))
    return warnings
