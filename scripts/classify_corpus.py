"""Classify every message file in a folder (feedback/classify.py) and print a Markdown table:
file → kind / address / status / run, or "ignored: why".

    .venv/bin/python scripts/classify_corpus.py ../shared/corpora/bounces/dsn \\
        --sender jobs@progressivedatajobs.org --return-path bounces@progressivedatajobs.org \\
        --unsubscribe unsubscribe@progressivedatajobs.org

No VERP secret is given, so no token verifies (the corpus's tokens were issued by nobody):
what is found comes from the reports' own fields, as for mail whose token a relay rewrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from digest.feedback.classify import Ours, examine


def table(folder: Path, ours: Ours) -> list[str]:
    rows = ["| file | result |", "|---|---|"]
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        verdict = examine(path.read_bytes(), ours)
        if not verdict.items:
            rows.append(f"| {path.name} | ignored: {verdict.why} |")
            continue
        found = "; ".join(f"{f.kind} {f.address} {f.status or '-'}"
                          + (f" (run {f.run})" if f.run else "") for f in verdict.items)
        rows.append(f"| {path.name} | {found} |")
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--sender", action="append", default=[],
                        help="our From address (repeatable)")
    parser.add_argument("--return-path", default=None)
    parser.add_argument("--unsubscribe", default=None, help="the List-Unsubscribe mailto")
    args = parser.parse_args(argv)
    ours = Ours(tuple(args.sender), args.return_path, args.unsubscribe)
    for folder in args.folders:
        print(f"\n### {folder}\n")
        print("\n".join(table(folder, ours)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
