"""The block-level parts of kramdown that CommonMark lacks, as markdown-it rules: footnotes
and kramdown's own tables (rows of `|`-separated cells, no header needed). Used by
kramdown.py; each rule reads a post once, line by line.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it.renderer import RendererHTML
    from markdown_it.rules_block import StateBlock
    from markdown_it.rules_core import StateCore
    from markdown_it.rules_inline import StateInline
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict


# Footnotes, as kramdown writes them: `[^name]` in text, `[^name]: text` as a block (more
# lines indented by four spaces), numbered in the order they are first referred to, listed
# at the end with a link back; a definition nobody refers to is not shown.
_FOOTNOTE_DEF = re.compile(r" {0,3}\[\^([^\]\s]+)\]:[ \t]*(.*)")
_FOOTNOTE_REF = re.compile(r"\[\^([^\]\s]+)\]")
_NOTES = "kramdown_footnotes"


def footnote_def(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    match = _FOOTNOTE_DEF.match(state.src[state.bMarks[start]:state.eMarks[start]])
    if match is None:
        return False
    if silent:
        return True
    lines = [match.group(2)]
    line = start + 1
    while line < end:
        if state.isEmpty(line):
            following = line + 1
            while following < end and state.isEmpty(following):
                following += 1
            if following >= end or state.sCount[following] < state.blkIndent + 4:
                break
            lines.extend([""] * (following - line))
            line = following
        elif state.sCount[line] < state.blkIndent + 4:
            break
        text = state.src[state.bMarks[line]:state.eMarks[line]]
        lines.append(re.sub(r"^(?: {4}|\t| {0,3}\t)", "", text))
        line += 1
    state.env.setdefault(_NOTES, {}).setdefault(match.group(1), "\n".join(lines))
    state.line = line
    return True


def footnote_ref(state: StateInline, silent: bool) -> bool:
    if not state.src.startswith("[^", state.pos):
        return False
    match = _FOOTNOTE_REF.match(state.src, state.pos)
    if match is None or match.group(1) not in state.env.get(_NOTES, {}):
        return False
    if not silent:
        token = state.push("kramdown_footnote_ref", "", 0)
        token.meta = {"name": match.group(1)}
    state.pos = match.end()
    return True


def footnote_list(state: StateCore, first: int = 1) -> None:
    """Number the references in order from *first* (kramdown's footnote_nr) and append the
    notes referred to."""
    notes = state.env.get(_NOTES)
    if not notes:
        return
    numbers: dict[str, int] = {}
    repeats: dict[str, int] = {}  # references to a note after its first
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "kramdown_footnote_ref":
                name = child.meta["name"]
                if name in numbers:
                    repeats[name] = child.meta["repeat"] = repeats.get(name, 0) + 1
                child.meta["number"] = numbers.setdefault(name, len(numbers) + first)
    if not numbers:
        return
    items = []
    for name in numbers:
        note = state.md.render(notes[name]).rstrip("\n")
        # a link back to each reference: the second and later are numbered
        back = "\u00a0".join(
            f'<a href="#fnref:{html.escape(name)}{f":{index}" if index else ""}" '
            f'class="reversefootnote" role="doc-backlink">&#8617;'
            f'{f"<sup>{index + 1}</sup>" if index else ""}</a>'
            for index in range(repeats.get(name, 0) + 1))
        note = note[:-4] + "\u00a0" + back + "</p>" if note.endswith("</p>") \
            else f"{note}<p>{back}</p>"
        items.append(f'<li id="fn:{html.escape(name)}" role="doc-endnote">\n{note}\n</li>\n')
    from markdown_it.token import Token

    block = Token("html_block", "", 0)
    start = f' start="{first}"' if first != 1 else ""
    block.content = (f'<div class="footnotes" role="doc-endnotes">\n<ol{start}>\n'
                     + "".join(items) + "</ol>\n</div>\n")
    state.tokens.append(block)


def footnote_ref_html(self: RendererHTML, tokens: Sequence[Token], idx: int,
                       options: OptionsDict, env: EnvType) -> str:
    meta = tokens[idx].meta
    name = html.escape(meta["name"])
    anchor = f"fnref:{name}" + (f":{meta['repeat']}" if meta.get("repeat") else "")
    return (f'<sup id="{anchor}" role="doc-noteref"><a href="#fn:{name}" class="footnote" '
            f'rel="footnote">{meta["number"]}</a></sup>')


# kramdown's own tables: a block of lines that each hold an unescaped `|` is a table even
# without a header separator (`Win|Win is a network…` is one), when blank lines (or its
# container's edges) surround it. GFM tables with a separator are markdown-it's table rule.
_PIPE_LINE = re.compile(r"\||.*?[^\\\n]\|")
_SEP_LINE = re.compile(r"[+|: \t-]*?-[+|: \t-]*?[ \t]*$")
_CELL_SPLIT = re.compile(r"(`+).*?\1|(?<!\\)\|")
_CODE_SPAN = re.compile(r"(`+).*?\1")
# what kramdown's earlier block parsers take before a table: a quote, a header, a list, a fence
_OTHER_BLOCK = re.compile(r" {0,3}(?:>|[*+-][\t| ]|\d+\.[\t| ]|[~`]{3})|#{1,6}[\t ]")


def _has_pipe(text: str) -> bool:
    """Whether a line holds an unescaped pipe outside code spans (kramdown's check)."""
    return _PIPE_LINE.match(_CODE_SPAN.sub("", text) if "`" in text else text) is not None


def _cells(line: str, leading_pipe: bool) -> list[str]:
    cells, start = [], 0
    for match in _CELL_SPLIT.finditer(line):
        if match.group(1) is None:  # a pipe outside code
            cells.append(line[start:match.start()])
            start = match.end()
    cells.append(line[start:])
    cells = [cell.replace("\\|", "|") for cell in cells]
    if leading_pipe and len(cells) > 1 and not cells[0].strip():
        cells.pop(0)
    if len(cells) > 1 and not cells[-1].strip():
        cells.pop()
    return [cell.strip() for cell in cells]


def pipe_table(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    first = state.bMarks[start] + state.tShift[start]
    if "|" not in state.src[first:state.eMarks[start]] or \
            not _has_pipe(state.src[first:state.eMarks[start]]) or \
            _OTHER_BLOCK.match(state.src, first):
        return False
    # after a blank line, or first in its container: a list item's line holds its marker
    # before the content, a block quote's starts past its `>`
    at_edge = start == 0 or state.isEmpty(start - 1) or \
        state.src[state.bMarks[start]:first].strip() != "" or \
        (state.bMarks[start] > 0 and state.src[state.bMarks[start] - 1] != "\n")
    if not at_edge:
        return False
    rows, line = [], start
    while line < end and not state.isEmpty(line) and state.sCount[line] >= state.blkIndent:
        text = state.src[state.bMarks[line] + state.tShift[line]:state.eMarks[line]]
        if not _has_pipe(text):
            return False  # a line without a pipe before a blank one: no table
        if _SEP_LINE.match(text):
            return False  # with a header: markdown-it's GFM table rule, or nothing
        rows.append(text)
        line += 1
    if silent:
        return True
    leading = rows[0].startswith("|")
    table = [_cells(row, leading) for row in rows]
    columns = max(len(cells) for cells in table)
    state.push("table_open", "table", 1).map = [start, line]
    state.push("tbody_open", "tbody", 1)
    for cells in table:
        state.push("tr_open", "tr", 1)
        for cell in cells + [""] * (columns - len(cells)):
            state.push("td_open", "td", 1)
            inline = state.push("inline", "", 0)
            inline.content, inline.children = cell or "\u00a0", []  # kramdown: &nbsp;
            state.push("td_close", "td", -1)
        state.push("tr_close", "tr", -1)
    state.push("tbody_close", "tbody", -1)
    state.push("table_close", "table", -1)
    state.line = line
    return True


# kramdown's inline link takes everything up to its balanced closing parenthesis as the
# address, spaces included (`[See more](https://…/manager$60,000 to $70,000)`), where
# CommonMark refuses the link. Tried after markdown-it's link rule, only where that failed
# and the address holds a space; a title in quotes may follow it, as in kramdown.
_PAREN_STOP = re.compile(r"(\()|(\))|\s(?=['\"])")
_TITLE = re.compile(r"[ \t]*([\"'])(.+?)\1[ \t]*\)")


def spaced_link(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "[" or state.linkLevel > 0:
        return False
    label_end = state.md.helpers.parseLinkLabel(state, state.pos, True)
    if label_end < 0 or not state.src.startswith("(", label_end + 1):
        return False
    pos, depth, title = label_end + 1, 0, ""
    while (stop := _PAREN_STOP.search(state.src, pos, state.posMax)) is not None:
        pos = stop.end()
        if stop.group(2):
            depth -= 1
            if depth == 0:
                break
        elif stop.group(1):
            depth += 1
        else:
            break
    else:
        return False
    href = state.src[label_end + 2:pos - 1].strip()
    if depth:
        title_match = _TITLE.match(state.src, pos, state.posMax)
        if title_match is None:
            return False
        title, pos = title_match.group(2), title_match.end()
    if not re.search(r"[ \t]", href) or "\n" in href or not state.md.validateLink(href):
        return False
    if not silent:
        old_max = state.posMax
        state.pos, state.posMax = state.pos + 1, label_end
        token = state.push("link_open", "a", 1)
        token.attrs = {"href": href}
        if title:
            token.attrSet("title", title)
        state.linkLevel += 1
        state.md.inline.tokenize(state)
        state.linkLevel -= 1
        state.push("link_close", "a", -1)
        state.posMax = old_max
    state.pos = pos
    return True
