"""Compare `digest posts --json` with what real Jekyll published (scripts/jekyll_dump.rb).

Prints every post whose url, date (the instant), title, tags or categories differ, and the
posts only one side has. Exit 1 on any difference. Used by tests/test_jekyll_parity.py and
by hand on the corpora in ../shared.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any


def _norm(post: dict[str, Any], url_key: str) -> dict[str, Any]:
    return {
        "url": post[url_key],
        "date": datetime.fromisoformat(post["date"]).timestamp(),
        "title": str(post["title"]),
        "tags": [str(t) for t in post["tags"]],
        "categories": [str(c) for c in post["categories"]],
    }


def compare(ours: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    mine = {p["path"]: _norm(p, "url") for p in ours["posts"]}
    theirs = {p["path"]: _norm(p, "absolute_url") for p in reference["posts"]}
    rejected = {r["path"] for r in ours["rejected"]}
    out = []
    for path in sorted(set(mine) | set(theirs)):
        if path not in mine:
            why = "rejected by us" if path in rejected else "MISSING"
            out.append(f"{path}: only Jekyll publishes it ({why})")
        elif path not in theirs:
            out.append(f"{path}: only we publish it")
        elif mine[path] != theirs[path]:
            diff = {k: (mine[path][k], theirs[path][k]) for k in mine[path]
                    if mine[path][k] != theirs[path][k]}
            out.append(f"{path}: {diff}")
    return out


if __name__ == "__main__":
    with open(sys.argv[1]) as a, open(sys.argv[2]) as b:
        lines = compare(json.load(a), json.load(b))
    print("\n".join(lines) or "identical")
    sys.exit(1 if any("rejected by us" not in line for line in lines) else 0)
