"""kramdown's lists (parser/kramdown/list.rb), and the other blocks where kramdown and
CommonMark split a post's lines differently (block quotes, indented code, setext headers),
as markdown-it block rules.

CommonMark and kramdown disagree on lists where job posts notice it: kramdown keeps one list
when the bullet changes (`*` then `+`); any line after an item that is not blank is part of
it (a lazy line: `1. a` then `  * b` nests the `*` list under `a`); a list interrupts a
paragraph whatever its first number (`2. x`), and an item may be empty (`* `, with the text
on the next line); `1.` numbers are never kept (no `start`). And kramdown decides per item,
not per list, whether the item's first paragraph is wrapped in `<p>`: only when a blank line
follows it, or when it is the last item and no item before it went unwrapped.

Each item's lines are collected as kramdown collects them, with the item's indentation
removed, then parsed again as blocks of their own: nested lists are this rule again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it.rules_block import StateBlock
    from markdown_it.token import Token

# kramdown's LIST_START_UL/OL on a line without its newline: up to 3 spaces, the marker,
# then a space, tab or `|` (PATTERN_TAIL)
_UL = re.compile(r"( {0,3}[+*-])([\t| ].*)", re.S)
_OL = re.compile(r"( {0,3}\d+\.)([\t| ].*)", re.S)
_HR = re.compile(r" {0,3}([*_-])[ \t]*\1[ \t]*\1(?:\1|[ \t])*")
_EOB = re.compile(r"\^\s*")
# what a lazy line may not start with: a block IAL, or an HTML tag that is not a span's
_SPAN_TAGS = ("a|abbr|acronym|b|big|bdo|br|button|cite|code|del|dfn|em|i|img|input|ins|kbd|"
              "label|mark|option|q|rb|rbc|rp|rt|rtc|ruby|samp|select|small|span|strong|sub|"
              "sup|tt|u|var|script")
_LAZY_STOP = re.compile(rf"\{{:(?!:|/).+\}}\s*$|</(?!(?:{_SPAN_TAGS})\b)[A-Za-z_][\w:.-]*\s*>"
                        rf"|<(?!(?:{_SPAN_TAGS})\b)[A-Za-z_][\w:.-]*")
_DEPTH = "kramdown_list_depth"
MAX_DEPTH = 20  # nested lists re-enter the parser: hostile nesting stops here, as text


def _line(state: StateBlock, line: int) -> str:
    """A line as its container sees it: indentation as spaces, relative to the container."""
    start = state.bMarks[line] + state.tShift[line]
    return " " * max(state.sCount[line] - state.blkIndent, 0) + state.src[start:state.eMarks[line]]


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _first_line(marker: str, rest: str) -> tuple[str, int]:
    """The item's first content and its indentation (kramdown's parse_first_list_line): an
    item with nothing after its marker takes indentation 4."""
    if not rest.strip():
        return "", 4
    leading = len(rest) - len(rest.lstrip(" \t"))
    column = len(marker)
    for char in rest[:leading]:
        column += 4 - column % 4 if char == "\t" else 1
    return rest[leading:], column


def _start(state: StateBlock, line: int, silent: bool) -> re.Match[str] | None:
    if state.sCount[line] - state.blkIndent >= 4:
        return None
    text = _line(state, line)
    if _HR.fullmatch(text) and not silent:
        return None  # kramdown tries a horizontal rule first: `* * *`
    return _UL.fullmatch(text) or _OL.fullmatch(text)


def kramdown_list(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    match = _start(state, start, silent)
    depth = state.env.get(_DEPTH, 0)
    if match is None or depth >= MAX_DEPTH:
        return False
    if silent:
        return True  # kramdown's GFM paragraphs end at any list start (`* * *` too)
    ordered = match.re is _OL
    items, after, eob = _collect(state, start, end, match, ordered)
    state.env[_DEPTH] = depth + 1
    try:
        _emit(state, start, after, ordered, items, eob)
    finally:
        state.env[_DEPTH] = depth
    return True


_Item = list[tuple[int, list[str]]]  # an item's segments: (first source line, lines)


def _collect(state: StateBlock, start: int, end: int, match: re.Match[str],
             ordered: bool) -> tuple[list[_Item], int, bool]:
    """Each item's segments of lines, as kramdown's parse_list gathers them (a segment
    starts where an indented list starts), the line after the list, and whether kramdown's
    end-of-block marker `^` ended it."""
    items: list[_Item] = []
    segment: list[str] = []
    last_blank = eob = nested = False
    indentation = 0
    line = start
    while line < end:
        text = _line(state, line)
        blank = not text.strip()
        new = None
        if line == start:
            new = match
        elif last_blank and _HR.fullmatch(text):
            break
        elif _EOB.fullmatch(text):
            eob = True
            line += 1
            break
        else:
            new = (_OL if ordered else _UL).fullmatch(text)
            if new is not None and (_indent(text) > min(indentation - 1, 3)
                                    or state.sCount[line] - state.blkIndent >= 4):
                new = None
        if new is not None:
            content, indentation = _first_line(new.group(1), new.group(2))
            segment = [content] if content else []
            items.append([(line if content else line + 1, segment)])
            nested = bool(_UL.fullmatch(content) or _OL.fullmatch(content))
            last_blank = False
        elif not blank and (_indent(text) >= indentation or (
                not last_blank and not _LAZY_STOP.match(text, min(_indent(text),
                                                                  indentation, 3)))):
            found = _indent(text) >= indentation
            if found:
                text = text[indentation:]
            listy = _UL.fullmatch(text) or _OL.fullmatch(text)
            if not nested and found and listy:
                segment = []
                items[-1].append((line, segment))
                nested = True
            elif nested and not found and listy:
                text = " " * (indentation + 4) + text
            segment.append(text)
            last_blank = False
        elif blank:
            nested = last_blank = True
            segment.append("")
        else:
            break
        line += 1
    return items, line, eob


def _blocks(tokens: list[Token], lines: list[str]) -> list[str]:
    """The kinds of an item's top-level blocks as kramdown counts its children: "p",
    "blank" for a run of blank lines, or "other"."""
    kinds: list[str] = []
    tops = [t for t in tokens if t.level == 0 and t.nesting >= 0 and t.map is not None]
    previous_end = 0
    for token in tops:
        assert token.map is not None
        first, last = token.map
        if any(not text.strip() for text in lines[previous_end:first]):
            kinds.append("blank")
        kinds.append("p" if token.type == "paragraph_open" else "other")
        while last > first + 1 and not lines[last - 1].strip():
            last -= 1  # a nested list holds the blank lines after it
        previous_end = last
    if any(not text.strip() for text in lines[previous_end:]):
        kinds.append("blank")
    return kinds


def _emit(state: StateBlock, start: int, end: int, ordered: bool, items: list[_Item],
          eob: bool) -> None:
    opener = state.push("ordered_list_open" if ordered else "bullet_list_open",
                        "ol" if ordered else "ul", 1)
    opener.map = [start, end]
    earlier_unwrapped = False  # kramdown: an item before the last one went without <p>
    for number, segments in enumerate(items):
        state.push("list_item_open", "li", 1)
        tokens: list[Token] = []
        kinds: list[str] = []
        for first_line, segment in segments:
            parsed: list[Token] = []
            if segment:
                state.md.block.parse("\n".join(segment) + "\n", state.md, state.env, parsed)
            kinds += _blocks(parsed, segment)
            for token in parsed:
                token.level += state.level
                if token.map is not None:
                    token.map = [token.map[0] + first_line, token.map[1] + first_line]
            tokens += parsed
        last = number == len(items) - 1
        unwrapped = bool(kinds) and kinds[0] == "p" and (
            len(kinds) < 2 or kinds[1] != "blank" or (last and len(kinds) == 2 and not eob)
        ) and (not last or len(items) == 1 or earlier_unwrapped)
        if unwrapped:
            opened = next(t for t in tokens if t.level == state.level)
            closed = next(t for t in tokens if t.level == state.level
                          and t.type == "paragraph_close")
            opened.hidden = closed.hidden = True
        if kinds and kinds[-1] == "blank":
            kinds.pop()
        earlier_unwrapped = earlier_unwrapped or unwrapped or not kinds or kinds[0] != "p"
        state.tokens += tokens
        state.push("list_item_close", "li", -1)
    state.push("ordered_list_close" if ordered else "bullet_list_close",
               "ol" if ordered else "ul", -1)
    state.line = end


# kramdown's block quote (parser/kramdown/blockquote.rb) runs to the next blank line, not
# to the last line with a `>`: `> a` then `* b` puts the list inside the quote, where
# CommonMark reads `* b` as a lazy line of the paragraph. Its lines, `>` removed, are
# parsed again as blocks.
_QUOTE = re.compile(r" {0,3}> ?")


def kramdown_blockquote(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    first = _line(state, start)
    depth = state.env.get(_DEPTH, 0)
    if not _QUOTE.match(first) or depth >= MAX_DEPTH:
        return False
    if silent:
        return True
    lines, line = [first], start + 1
    while line < end:
        text = _line(state, line)
        if not text.strip() or _EOB.fullmatch(text) or \
                _LAZY_STOP.match(text, min(_indent(text), 3)):
            break
        lines.append(text)
        line += 1
    opener = state.push("blockquote_open", "blockquote", 1)
    opener.markup, opener.map = ">", [start, line]
    parsed: list[Token] = []
    state.env[_DEPTH] = depth + 1
    try:
        state.md.block.parse("\n".join(_QUOTE.sub("", text, count=1) for text in lines) + "\n",
                             state.md, state.env, parsed)
    finally:
        state.env[_DEPTH] = depth
    for token in parsed:
        token.level += state.level
        if token.map is not None:
            token.map = [token.map[0] + start, token.map[1] + start]
    state.tokens += parsed
    state.push("blockquote_close", "blockquote", -1).markup = ">"
    state.line = line
    return True


def kramdown_code(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """kramdown's indented code block (parser/kramdown/codeblock.rb): lines indented by four
    spaces, and the unindented lines right after one of them, each joined to the line before
    by a space; blank lines only between indented lines."""
    if state.sCount[start] - state.blkIndent < 4 or state.isEmpty(start):
        return False
    if silent:
        return True
    lines: list[str] = []
    line = start
    while line < end:
        text = _line(state, line)
        if not text.strip():
            following = line
            while following < end and not _line(state, following).strip():
                following += 1
            if following >= end or _indent(_line(state, following)) < 4:
                break
            lines += [""] * (following - line)
            line = following
            continue
        if _indent(text) >= 4:
            lines.append(text[4:])
        elif _EOB.fullmatch(text) or _LAZY_STOP.match(text, min(_indent(text), 3)):
            break
        else:
            lines[-1] += " " + text
        line += 1
    token = state.push("code_block", "code", 0)
    token.content, token.map = "\n".join(lines) + "\n", [start, line]
    state.line = line
    return True


# kramdown's setext header is one line of text over its underline, first in its container or
# after a blank line; otherwise the `---` stays text (a dash), as a horizontal rule ends no
# paragraph unless it is also a list start (`* * *`).
_UNDERLINE = re.compile(r" {0,3}(?:=+|-+)[ \t]*")


def one_line_setext(original: Callable[[StateBlock, int, int, bool], bool]
                    ) -> Callable[[StateBlock, int, int, bool], bool]:
    def rule(state: StateBlock, start: int, end: int, silent: bool) -> bool:
        if start + 1 >= end or state.sCount[start + 1] - state.blkIndent >= 4 or \
                not _UNDERLINE.fullmatch(_line(state, start + 1)) or \
                (start > 0 and not state.isEmpty(start - 1)):
            return False
        return original(state, start, end, silent)
    return rule
