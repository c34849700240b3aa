"""config.yaml (and the site's own _config.yml) loaded once: the last good load, cached.

file.py validates the files (pydantic); every problem is reported with the file, the
line and, for a misspelt key, the key that was probably meant. Relative paths resolve
against the folder of the file that names them, so `digest --config /srv/site/config.yaml`
works from anywhere. The last good load is kept in the state folder (see load_config), as
JSON decoded field by field against settings.py's dataclasses' types: a file planted there
can at worst be a cache miss, never run code (it was a pickle once).
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from .. import __version__
from .settings import NO_POSTS_FOLDER, Config

CACHE_NAME = "config.json"
OLD_CACHE_NAME = "config.pickle"  # never read: removed when the JSON one is written


def load_config(path: Path) -> Config:
    """Read config.yaml (and the _config.yml it names); raise ConfigError listing every problem.

    Validating imports pydantic, which alone costs more than a build of an unchanged site;
    so the last good load is kept in the state folder and reused while both files, and
    digest's config code, are byte for byte the same. Bytes, not mtimes: an edit within one
    mtime tick is still seen. Anything else is read again in full (file.py), so every
    error is reported exactly as without the cache, and an error is never kept.
    """
    path = path.resolve()
    place = _cache_place(path)
    if place is not None:
        cached = _cached(place, path)
        if cached is not None:
            return cached
    from .file import read_config

    config = read_config(path)
    if place is not None:
        _remember(place, path, config, read_config)
    return config


@dataclass(frozen=True)
class _Place:
    """Where the cache of a config file lives, and where its posts folder was named."""

    file: Path
    posts_root: Path


def _cache_place(path: Path) -> _Place | None:
    """The cache file in the state folder config.yaml names: a plain YAML read, no checks."""
    import yaml

    from ..util.yamlsource import VALUE_ERRORS, load_bounded

    try:  # bounded: this plain read comes before the checked one (file.py)
        data = load_bounded(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, *VALUE_ERRORS):
        return None
    if not isinstance(data, dict):
        return None
    state, posts = data.get("state", ".digest"), data.get("posts")
    if not isinstance(state, str):
        return None
    folder = (path.parent / state).resolve()
    if posts is None and data.get("sources"):  # feeds only: read_config's stand-in
        return _Place(folder / CACHE_NAME, folder / NO_POSTS_FOLDER)
    if not isinstance(posts, str):
        return None
    return _Place(folder / CACHE_NAME, (path.parent / posts).resolve())


def posts_folder_hint(path: Path) -> Path | None:
    """The posts folder config.yaml most likely names, from a plain read with no checks:
    enough to start scanning it (posts/scan.py) while the config is loaded and validated."""
    place = _cache_place(path.resolve())
    return None if place is None else _posts_folder(place.posts_root)


def _key(path: Path, jekyll_config: Path | None,
         hugo_config: Path | None = None) -> tuple[str, ...] | None:
    """What a loaded config depends on: digest's config code and both files' bytes."""
    digest = hashlib.sha256(__version__.encode())
    here = Path(__file__).parent
    try:
        for file in (here / "settings.py", here / "file.py", here / "jekyllfeed.py",
                     here / "hugoconfig.py", here / "kramdownconfig.py", here / "cache.py",
                     path, jekyll_config, hugo_config):
            if file is not None:
                digest.update(str(file).encode() + b"\0" + file.read_bytes() + b"\0")
    except OSError:
        return None
    return (str(path), digest.hexdigest())


def _posts_folder(root: Path) -> Path:
    """As read_config picks it: the site root's _posts folder if it has one."""
    try:
        return root / "_posts" if (root / "_posts").is_dir() else root
    except OSError:  # an unreadable folder: the reading itself says so, with its path
        return root


class _Miss(Exception):
    """The cache file does not hold a Config of this version's shape."""


def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value  # str, int, float, bool, None


def _decode(kind: Any, value: Any) -> Any:
    """*value* (parsed JSON) as the type *kind*, checked all the way down; _Miss if not."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        return _decode_optional(kind, value)
    if isinstance(kind, type) and is_dataclass(kind):
        return _decode_dataclass(kind, value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    if origin is tuple and isinstance(value, list):
        return _decode_tuple(kind, value)
    if origin is Literal and value in get_args(kind):
        return value
    return _decode_scalar(kind, value)


def _decode_optional(kind: Any, value: Any) -> Any:
    options = get_args(kind)
    if value is None and type(None) in options:
        return None
    (inner,) = [o for o in options if o is not type(None)]  # ours have one other
    return _decode(inner, value)


def _decode_dataclass(kind: Any, value: Any) -> Any:
    hints = get_type_hints(kind)
    names = [f.name for f in fields(kind)]
    if not isinstance(value, dict) or sorted(value) != sorted(names):
        raise _Miss
    return kind(**{name: _decode(hints[name], value[name]) for name in names})


def _decode_tuple(kind: Any, value: list[Any]) -> tuple[Any, ...]:
    args = get_args(kind)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_decode(args[0], item) for item in value)
    if len(args) != len(value):
        raise _Miss
    return tuple(_decode(a, item) for a, item in zip(args, value, strict=True))


def _decode_scalar(kind: Any, value: Any) -> Any:
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return value  # an int stays one (JSON keeps 24 and 24.0 apart), as it was read
    if kind in (str, int, bool) and type(value) is kind:
        return value
    raise _Miss


def _cached(place: _Place, path: Path) -> Config | None:
    try:
        entry: Any = json.loads(place.file.read_bytes())
        key, config = entry["key"], _decode(Config, entry["config"])
    except (OSError, ValueError, TypeError, KeyError, _Miss):  # unreadable or outdated: a miss
        return None
    if not isinstance(config, Config) or \
            key != list(_key(path, config.jekyll_config, config.hugo_config) or ()):
        return None
    posts = _posts_folder(place.posts_root)  # the folder may have come or gone since
    if posts != config.posts or not posts.is_dir():
        return None
    templates = config.digest.templates  # checked by read_config, and may have gone since
    if templates is not None and not templates.is_dir():
        return None
    return config


def _remember(place: _Place, path: Path, config: Config,
              read_config: Callable[[Path], Config]) -> None:
    """Keep *config* if the files it came from held still while it was read (else: a miss)."""
    if not place.file.parent.is_dir():  # the first build creates the state folder
        return
    key = _key(path, config.jekyll_config, config.hugo_config)
    if key is None or read_config(path) != config or \
            _key(path, config.jekyll_config, config.hugo_config) != key:
        return
    from ..errors import DigestError
    from ..util.writer import write_if_changed

    encoded = _encode(config)
    try:
        if _decode(Config, json.loads(json.dumps(encoded))) != config:
            return  # would not come back the same: never cache what would load differently
    except _Miss:
        return
    data = json.dumps({"key": list(key), "config": encoded}, sort_keys=True)
    try:
        write_if_changed(place.file, data.encode(), mode=0o600)  # atomic: never half a file
        place.file.with_name(OLD_CACHE_NAME).unlink(missing_ok=True)
    except (OSError, DigestError):
        pass  # only a cache: the next command validates the config again
