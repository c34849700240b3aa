"""Benchmark `digest build` against Hugo on a 20,000-post replay of the jobs board.

Measured in one run, on the same posts: Hugo cold (the reference), digest cold (empty
state), digest again with nothing changed, digest after adding one post, and Hugo after
the same post (digest's +1 is, like the other rows, the best of K runs, each with a new
post). Prints a table with ratios against Hugo cold, and the issue's targets.

With --linking SHARE, that share of the posts also link to the post before them with
`{% post_url %}`, and one more row times a rebuild after a linked post's URL moved (best
of K, each time another of the newest linked posts: their linking posts are in feeds).

Two more rows time a site of one post with --tags N tags (1,000 by default; 0 skips it),
cold, digest and Hugo (best of K each): that post is in N + 1 feeds, each listing its N
tags, so a build whose work grows faster than what it writes shows here first.

digest's bytecode is compiled first, as `pip install` does for an installed copy: an
editable install run with PYTHONDONTWRITEBYTECODE set (as here) would otherwise compile
every module from source on every run (~30 ms of each +1 build), which no deployment does.

    python bench/build_bench.py [--posts N] [--source PATH] [--runs K] [--linking SHARE]
                                [--tags N]
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import add_links, add_one_post, make_corpus, move_post
from hugo_ref import make_hugo_site, run_hugo
from measure import Measurement, best_of, print_table, run_measured

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "corpora" / "progressivedatajobs"


def _digest(config: Path, label: str) -> Measurement:
    return run_measured([sys.executable, "-m", "digest", "--config", str(config), "build"],
                        label=label)


def _many_tags_rows(out: Path, source: Path, tags: int, runs: int) -> list[Measurement]:
    """digest and Hugo, cold, on a site of one post with *tags* tags."""
    posts = out / "tags" / "_posts"
    posts.mkdir(parents=True)
    names = "\n".join(f"  - tag{i:04d}" for i in range(tags))
    (posts / "2024-01-02-many-tags.md").write_text(
        f"---\ntitle: A post with {tags} tags\ntags:\n{names}\n---\n\nOne job, many tags.\n",
        encoding="utf-8")
    hugo_site = out / "tags" / "hugo"
    make_hugo_site(posts, hugo_site)
    config = out / "tags" / "config.yaml"
    config.write_text(f"site:\n  jekyll_config: {source / '_config.yml'}\n"
                      f"posts: {posts}\noutput: {out / 'tags' / 'public'}\n"
                      f"state: {out / 'tags' / 'state'}\n")
    label = f"{tags:,} tags"

    def cold() -> Measurement:
        shutil.rmtree(out / "tags" / "state", ignore_errors=True)
        shutil.rmtree(out / "tags" / "public", ignore_errors=True)
        return _digest(config, f"digest {label}")

    return [best_of(runs, lambda: run_hugo(hugo_site, label=f"hugo {label}")),
            best_of(runs, cold)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20000)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--runs", type=int, default=3, help="best of K for cold builds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--linking", type=float, default=0.0,
                        help="share of posts that link to another with {%% post_url %%}")
    parser.add_argument("--tags", type=int, default=1000,
                        help="tags of the one post of the many-tags site (0: no such rows)")
    args = parser.parse_args()

    out: Path = args.out
    compileall.compile_dir(ROOT / "digest", quiet=1)
    shutil.rmtree(out, ignore_errors=True)
    posts = out / "site" / "_posts"
    make_corpus(args.source / "_posts", posts, count=args.posts)
    linked = [target for _, target in add_links(posts, args.linking)] if args.linking else []
    hugo_site = out / "hugo"
    make_hugo_site(posts, hugo_site)
    config = out / "config.yaml"
    config.write_text(f"site:\n  jekyll_config: {args.source / '_config.yml'}\n"
                      f"posts: {posts}\noutput: {out / 'public'}\nstate: {out / 'state'}\n")

    def cold() -> Measurement:
        shutil.rmtree(out / "state", ignore_errors=True)
        shutil.rmtree(out / "public", ignore_errors=True)
        return _digest(config, "digest cold")

    rows = [best_of(args.runs, lambda: run_hugo(hugo_site, label="hugo cold")),
            best_of(args.runs, cold),
            best_of(args.runs, lambda: _digest(config, "digest unchanged"))]
    extra = iter(range(args.posts + 1, args.posts + 1 + args.runs))

    def plus_one() -> Measurement:
        """A new post each time, and back to the unchanged site after it."""
        added = add_one_post(posts, next(extra))
        try:
            return _digest(config, "digest +1 post")
        finally:
            added.unlink()
            _digest(config, "digest unchanged")

    rows.append(best_of(args.runs, plus_one))
    targets = iter(linked[-args.runs:])

    def moved() -> Measurement:
        """A linked post's URL changed: its linking post's feeds must be rendered again."""
        restore = move_post(next(targets), args.posts)
        try:
            return _digest(config, "digest link moved")
        finally:
            restore()
            _digest(config, "digest unchanged")

    if linked:
        rows.append(best_of(args.runs, moved))
    added = add_one_post(posts, args.posts)
    make_hugo_site(posts, hugo_site)  # Hugo has no incremental CLI build: it builds all
    rows.append(run_hugo(hugo_site, label="hugo +1 post"))
    added.unlink()
    hugo, cold_row, _, plus_one, *_, hugo_plus = rows
    tag_rows = _many_tags_rows(out, args.source, args.tags, args.runs) if args.tags else []

    print(f"{args.posts} posts replayed from {args.source}")
    print_table(rows + tag_rows, reference="hugo cold")
    mem = max(cold_row.peak_rss_mb, cold_row.tree_rss_mb)
    hugo_mem = max(hugo.peak_rss_mb, hugo.tree_rss_mb)
    print(f"target cold <= hugo:            {cold_row.seconds:.2f}s vs {hugo.seconds:.2f}s "
          f"({'met' if cold_row.seconds <= hugo.seconds else 'NOT met'})")
    print(f"target peak memory <= hugo/2:   {mem:.0f} MB vs {hugo_mem / 2:.0f} MB "
          f"({'met' if mem <= hugo_mem / 2 else 'NOT met'})")
    for name, ref in (("hugo cold", hugo), ("hugo +1", hugo_plus)):
        met = plus_one.seconds < ref.seconds / 10
        print(f"target +1 post < {name}/10:{' ' * (14 - len(name))}{plus_one.seconds:.3f}s vs "
              f"{ref.seconds / 10:.3f}s ({'met' if met else 'NOT met'})")
    if tag_rows:
        hugo_tags, digest_tags = tag_rows
        # not like for like: Hugo writes RSS only and lists no categories in an item
        print(f"{args.tags:,} tags on one post:   {digest_tags.seconds:.2f}s vs hugo "
              f"{hugo_tags.seconds:.2f}s ({digest_tags.seconds / hugo_tags.seconds:.1f}x; "
              f"digest writes {2 * (args.tags + 1):,} feeds with {args.tags:,} categories "
              f"each, Hugo {args.tags + 1:,} with none)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
