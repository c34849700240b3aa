"""The posts folder scan (in a forked child or here) and the parse cache's snapshot of it.

A build that finds its scan equal to the snapshot parses nothing, so the snapshot must
never claim a reading is fresh when it is not: these tests change files in ways a snapshot
could miss, and write to the cache from a second connection in between.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import NOW, build_site, config_of, make_site, output, parse_feed, post

from digest.posts.reader import fingerprint
from digest.posts.scan import Scan, scan
from digest.state.store import Store


def _files(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")


def test_scan_lists_candidate_files_with_size_and_mtime(tmp_path: Path) -> None:
    _files(tmp_path, ["2019-01-01-a.md", "jobs/2019-01-02-b.md", "jobs/deep/2019-01-03-c.md",
                      "_skip/2019-01-04-d.md", ".hidden.md", "#x.md", "2019-01-05-e.md~",
                      "jobs/_also/2019-01-06-f.md"])
    (tmp_path / "gone.md").symlink_to(tmp_path / "nowhere.md")  # dangling: not a file
    found = scan(tmp_path)
    assert sorted(found) == ["2019-01-01-a.md", "jobs/2019-01-02-b.md",
                             "jobs/deep/2019-01-03-c.md"]
    st = (tmp_path / "jobs/2019-01-02-b.md").stat()
    assert found["jobs/2019-01-02-b.md"] == (st.st_size, st.st_mtime_ns)


def test_scan_walks_a_symlinked_folder_once_and_survives_a_loop(tmp_path: Path) -> None:
    _files(tmp_path, ["real/2019-01-01-a.md"])
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    found = scan(tmp_path)
    assert sorted(found) == ["real/2019-01-01-a.md"]


def test_a_forked_scan_returns_what_a_scan_here_does(tmp_path: Path) -> None:
    """Run in a fresh interpreter: pytest's own process may have threads, and then it
    rightly does not fork."""
    _files(tmp_path, [f"2019-01-{day:02d}-p{day}.md" for day in range(1, 29)] + ["a/b/c.md"])
    code = ("import sys; from pathlib import Path; from digest.posts.scan import Scan, scan\n"
            "root = Path(sys.argv[1]); s = Scan.start(root)\n"
            "print(s.forked, s.result() == scan(root))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True", "True"]


def test_a_forked_scan_is_running_until_its_child_has_written(tmp_path: Path) -> None:
    """`digest build` loads the render libraries only while it would wait for the scan."""
    _files(tmp_path, ["2019-01-01-a.md"])
    code = ("import sys, time; from pathlib import Path; import digest.posts.scan as m\n"
            "root, real = Path(sys.argv[1]), m.scan\n"
            "m.scan = lambda r: (time.sleep(1), real(r))[1]  # the child runs this one\n"
            "s = m.Scan.start(root); print(s.running, s.result() == real(root), s.running)\n"
            "m.scan = real; s = m.Scan.start(root); time.sleep(1); print(s.running)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True", "True", "False", "False"]
    assert not Scan(tmp_path).running  # not forked: nothing to wait for


def test_no_fork_while_another_thread_runs(tmp_path: Path) -> None:
    _files(tmp_path, ["2019-01-01-a.md"])
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        scanned = Scan.start(tmp_path)
        assert not scanned.forked
        assert scanned.result() == scan(tmp_path)
    finally:
        stop.set()
        other.join()


def test_a_failed_child_leaves_the_error_to_this_process(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from digest.posts.scan import Scan\n"
            "s = Scan.start(Path(sys.argv[1])); print(s.forked, flush=True)\n"
            "try:\n    s.result()\n"
            "except FileNotFoundError as exc:\n    print('raised', exc.filename)")
    missing = tmp_path / "no such folder"
    done = subprocess.run([sys.executable, "-c", code, str(missing)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.splitlines() == ["True", f"raised {missing}"]


def _marks(config_path: Path) -> tuple[dict[str, tuple[int | None, int]], int, bool]:
    config = config_of(config_path)
    store = Store.open(config.state)
    try:
        return store.parse_marks(fingerprint(config.site))
    finally:
        store.close()


def _titles(config_path: Path) -> list[str]:
    return [e.title for e in parse_feed(output(config_path) / "feed.xml").entries]


def test_an_unchanged_folder_is_read_from_the_snapshot(tmp_path: Path) -> None:
    config_path = make_site(tmp_path, {"2019-01-01-a.md": post("A"), "2019-01-02-b.md": post("B")})
    build_site(config_path)
    marks, _, from_snapshot = _marks(config_path)
    assert from_snapshot
    assert marks == scan(tmp_path / "_posts")
    assert build_site(config_path).found.parsed == 0


def test_an_edit_that_keeps_the_size_is_seen(tmp_path: Path) -> None:
    config_path = make_site(tmp_path, {"2019-01-01-a.md": post("Aaa")})
    build_site(config_path)
    path = tmp_path / "_posts" / "2019-01-01-a.md"
    before = path.stat()
    path.write_text(post("Bbb"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert path.stat().st_size == before.st_size
    assert build_site(config_path).found.parsed == 1
    assert _titles(config_path) == ["Bbb"]


def test_a_write_by_another_process_in_between_drops_the_snapshot(tmp_path: Path) -> None:
    """A build that read the marks, then saw another build write, must not leave a snapshot
    made from its older reading: it could hide the other build's change from the next."""
    config_path = make_site(tmp_path, {"2019-01-01-a.md": post("A")})
    build_site(config_path)
    config = config_of(config_path)
    mark = fingerprint(config.site)
    mine, other = Store.open(config.state), Store.open(config.state)
    try:
        _, seq, _ = mine.parse_marks(mark)
        other.save_parsed([], ["2019-01-01-a.md"], fingerprint=mark, marks={}, based_on=seq)
        mine.save_parsed([], [], fingerprint=mark, marks=scan(config.posts), based_on=seq)
        _, _, from_snapshot = mine.parse_marks(mark)
    finally:
        mine.close()
        other.close()
    assert not from_snapshot
    assert build_site(config_path).found.parsed == 1  # the row the other deleted, read again
    assert _marks(config_path)[2]
    assert _titles(config_path) == ["A"]


def test_a_snapshot_from_another_python_is_not_read(tmp_path: Path) -> None:
    config_path = make_site(tmp_path, {"2019-01-01-a.md": post("A")})
    build_site(config_path)
    store = Store.open(config_of(config_path).state)
    try:
        store.db.execute("UPDATE parse_snapshot SET format = 'marshal 0 2.7', marks = x'00'")
    finally:
        store.close()
    assert not _marks(config_path)[2]
    assert build_site(config_path).found.parsed == 0  # the rows still hold every reading
    assert _marks(config_path)[2]  # and the snapshot is made again


@pytest.mark.parametrize("change", ["add", "delete", "touch"])
def test_the_cli_build_with_its_forked_scan_sees_each_change(tmp_path: Path, change: str) -> None:
    config_path = make_site(tmp_path, {"2019-01-01-a.md": post("A"), "2019-01-02-b.md": post("B")})
    command = [sys.executable, "-m", "digest", "--config", str(config_path), "build",
               "--now", NOW.isoformat()]
    subprocess.run(command, check=True, capture_output=True)
    posts = tmp_path / "_posts"
    if change == "add":
        (posts / "2019-01-03-c.md").write_text(post("C"))
        expected = ["C", "B", "A"]
    elif change == "delete":
        (posts / "2019-01-02-b.md").unlink()
        expected = ["A"]
    else:
        path = posts / "2019-01-01-a.md"
        path.write_text(post("A2"))
        os.utime(path, ns=(0, path.stat().st_mtime_ns + 1))
        expected = ["B", "A2"]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    assert "(1 parsed" in done.stdout or change == "delete", done.stdout
    assert _titles(config_path) == expected


def test_a_cancelled_scan_leaves_no_child(tmp_path: Path) -> None:
    """The command line cancels a scan started from a plain read of config.yaml when the
    validated config names another folder, or is invalid: the child must be gone."""
    _files(tmp_path, ["2019-01-01-a.md"])
    code = ("import os, sys; from pathlib import Path; from digest.posts.scan import Scan\n"
            "s = Scan.start(Path(sys.argv[1])); print(s.forked); s.cancel(); print(s.forked)\n"
            "try:\n    os.waitpid(-1, os.WNOHANG)\n"
            "except ChildProcessError:\n    print('no child')")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, check=True, timeout=30)
    assert done.stdout.split("\n")[:3] == ["True", "False", "no child"]


def test_an_invalid_config_still_exits_2_with_the_early_scan(tmp_path: Path) -> None:
    config_path = make_site(tmp_path, {"2019-01-01-a.md": post("A")},
                            extra={"feeds": {"entires": 5}})
    done = subprocess.run([sys.executable, "-m", "digest", "--config", str(config_path),
                           "build"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "entries" in done.stderr  # the likely key meant
