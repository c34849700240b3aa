"""The `kramdown:` settings in the site's _config.yml → settings.Kramdown.

Jekyll hands this mapping, over its own defaults, to kramdown for every post and to the
`smartify` filter jekyll-feed runs on titles; the keys that change what a post reads as are
read the same way here: `smart_quotes` (four HTML entity names or code points, separated by
commas), `auto_ids`, `auto_id_prefix`, `hard_wrap` and `footnote_nr`. The other keys
(`input`, `toc_levels`, `entity_output`, syntax highlighting…) change no text digest shows,
or only GFM input is supported: they are left to Jekyll.
"""

from __future__ import annotations

import html.entities
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Problem
from ..util.yamlsource import Located
from .settings import JEKYLL_KRAMDOWN, Kramdown

MAX_FOOTNOTE_NR = 1_000_000
_QUOTES_HINT = "write four HTML entity names or code points separated by commas, as " \
    "Jekyll's default: lsquo,rsquo,ldquo,rdquo"


def _quote(name: str) -> str | None:
    """The character an entity name (`lsquo`) or a code point (`8216`) stands for."""
    name = name.strip()
    if name.isdigit():
        number = int(name)
        return chr(number) if 0 < number < 0x110000 and not 0xD800 <= number < 0xE000 \
            else None
    return html.entities.html5.get(name + ";") if name.isalnum() else None


def _boolean(value: Any) -> bool | None:
    """kramdown's boolean option: true or false, also as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def kramdown_settings(path: Path, located: Located) -> Kramdown:
    """The site's kramdown settings; ConfigError naming each bad key's line."""
    data = located.data.get("kramdown") if isinstance(located.data, dict) else None
    if data is None:
        return JEKYLL_KRAMDOWN
    if not isinstance(data, dict):
        raise ConfigError([Problem(path, located.line_of(("kramdown",)),
                                   "'kramdown' must be a mapping of kramdown's options",
                                   "indent its keys below it, as `  smart_quotes: ...`")])
    problems: list[Problem] = []
    changes: dict[str, Any] = {}

    def bad(key: str, message: str, hint: str) -> None:
        problems.append(Problem(path, located.line_of(("kramdown", key)),
                                f"'kramdown.{key}': {message}", hint))

    quotes = data.get("smart_quotes")
    if quotes is not None:
        names = quotes.split(",") if isinstance(quotes, str) else quotes
        chars = [_quote(str(name)) for name in names] if isinstance(names, list) else []
        if len(chars) != 4 or None in chars:
            bad("smart_quotes", f"'{quotes}' is not four quotes kramdown knows", _QUOTES_HINT)
        else:
            changes["smart_quotes"] = tuple(str(char) for char in chars)
    for key in ("auto_ids", "hard_wrap"):
        if data.get(key) is not None:
            flag = _boolean(data[key])
            if flag is None:
                bad(key, f"'{data[key]}' is not true or false", "write true or false")
            else:
                changes[key] = flag
    prefix = data.get("auto_id_prefix")
    if prefix is not None:
        changes["auto_id_prefix"] = str(prefix)
    number = data.get("footnote_nr")
    if number is not None:
        if isinstance(number, bool) or not isinstance(number, int | str) or \
                not str(number).strip().isdigit() or \
                not 1 <= int(number) <= MAX_FOOTNOTE_NR:
            bad("footnote_nr", f"'{number}' is not a whole number from 1 to "
                f"{MAX_FOOTNOTE_NR:,}", "write the first footnote's number, as 1")
        else:
            changes["footnote_nr"] = int(number)
    if problems:
        raise ConfigError(problems)
    return replace(JEKYLL_KRAMDOWN, **changes)
