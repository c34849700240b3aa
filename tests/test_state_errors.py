"""A broken state folder, output folder or input folder gives one clear message and exit 2,
never a traceback and never a half-written file, whatever command meets it (issues 12, 18).

Every case runs the real `digest` in a subprocess on real files: a damaged, truncated,
locked or read-only database, a full disk (a real tmpfs of a few hundred kilobytes), an
unreadable posts folder, a templates folder that is not there. Being root, the tests make a
folder read-only with a read-only bind mount, and unreadable by dropping the capabilities
that let root read anything (setpriv); where the machine does not allow those, they skip.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import post, run_cli, write_posts
from helpers import SECRET, digest_site

from digest.state.store import DATABASE

AS_OF = "2024-06-10T09:00"
COMMANDS: dict[str, list[str]] = {
    "build": ["build"], "check": ["check"], "posts": ["posts"],
    "send": ["send", "--as-of", AS_OF], "preview": ["preview", "--as-of", AS_OF],
    "status": ["status"], "unsubscribe": ["unsubscribe", "ana@example.org"],
    "resubscribe": ["resubscribe", "ana@example.org"], "run": ["run"],
    "serve": ["serve", "--listen", "127.0.0.1:0"],
}
# the command line with a short wait for another process's lock (30 s in real use)
LAUNCH = ("import sys, digest.state.store; digest.state.store.BUSY_TIMEOUT = 0.3; "
          "from digest.cli import main; sys.argv[0] = 'digest'; main()")


def digest(config: Path, args: list[str], *,
           prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DIGEST_SECRET=SECRET, PYTHONIOENCODING="utf-8")
    return subprocess.run([*prefix, sys.executable, "-c", LAUNCH, "--config", str(config),
                           *args], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2, one error line naming what it is about, no traceback."""
    err = result.stderr
    assert result.returncode == 2, (result.stdout, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def sent(tmp_path: Path) -> Path:
    """A site built and its digest sent: a state database with something in it."""
    os.environ["DIGEST_SECRET"] = SECRET
    config = digest_site(tmp_path)
    assert run_cli(["--config", str(config), "build"])[0] == 0
    assert run_cli(["--config", str(config), "send", "--as-of", AS_OF])[0] == 0
    return config


def _database(config: Path) -> Path:
    return config.parent / "state" / DATABASE


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_of_garbage_bytes_is_named_with_what_to_do(sent, command):
    database = _database(sent)
    database.write_bytes(b"this is no database\n" * 500)
    refused(digest(sent, COMMANDS[command]), str(database), "damaged", "backup")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_truncated_database_is_named_with_what_to_do(sent, command):
    database = _database(sent)
    page = 4096
    assert database.stat().st_size > 4 * page
    os.truncate(database, 2 * page)  # the schema survives, the tables' pages do not
    refused(digest(sent, COMMANDS[command]), str(database), "damaged", "backup")


@pytest.fixture
def locked(sent: Path) -> Iterator[Path]:
    """Another process holding an exclusive lock on the state database."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(_database(sent))!r}, isolation_level=None)\n"
        "db.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "db.execute('CREATE TABLE IF NOT EXISTS held (x)')\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    yield sent
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_locked_by_another_process_is_named_with_what_to_do(locked, command):
    database = _database(locked)
    refused(digest(locked, COMMANDS[command]), str(database), "locked", "fuser")


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mounting is not permitted here: {done.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def read_only_state(sent: Path) -> Iterator[Path]:
    """The state folder bind-mounted read-only onto itself (chmod does not stop root)."""
    state = sent.parent / "state"
    _mount("--bind", str(state), str(state))
    try:
        _mount("-o", "remount,ro,bind", str(state))
        with pytest.raises(OSError):
            (state / "probe").write_text("x")
        yield sent
    finally:
        _umount(state)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_state_folder_is_named_with_what_to_do(read_only_state, command):
    state = read_only_state.parent / "state"
    refused(digest(read_only_state, COMMANDS[command]), str(state), "writable")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[object]:
    """mount(folder, size): a real tmpfs of that size on *folder*, nearly filled."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str, keep: Path | None = None) -> None:
        saved = tmp_path / f"saved-{folder.name}"
        if keep is not None:
            shutil.copytree(keep, saved)
            shutil.rmtree(keep)
        folder.mkdir(parents=True, exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        mounted.append(folder)
        if keep is not None:
            shutil.copytree(saved, folder, dirs_exist_ok=True)
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:  # leave nothing free
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)

    yield mount
    for folder in mounted:
        _umount(folder)


def _tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")]


@pytest.mark.parametrize("command", ["build", "run"])
def test_a_full_output_disk_is_named_and_leaves_no_half_written_file(tmp_path, small_disk,
                                                                      command):
    config = digest_site(tmp_path)
    public = tmp_path / "public"
    small_disk(public, "64k")
    result = digest(config, COMMANDS[command]) if command == "build" else digest(
        config, ["run"], prefix=("timeout", "8"))
    if command == "run":  # the daemon logs a failed build and goes on: it must not crash
        assert "Traceback" not in result.stderr, result.stderr
        assert "No space left on device" in result.stderr
    else:
        refused(result, "cannot write", str(public), "No space left", "free some space")
    assert _tmp_files(public) == []
    for feed in public.glob("*.xml"):  # what was written is whole
        assert feed.read_bytes().rstrip().endswith((b"</feed>", b"</rss>", b"</opml>"))


@pytest.mark.parametrize("command", ["build", "send", "unsubscribe", "preview"])
def test_a_full_state_disk_is_named_with_what_to_do(sent, small_disk, command):
    state = sent.parent / "state"
    write_posts(sent.parent, {"2024-06-08-new.md": post("New Job", tags="[union]")})
    small_disk(state, "1m", keep=state)
    result = digest(sent, COMMANDS[command])
    refused(result, str(state), "full", "free some space")
    assert _tmp_files(state / "archive") == []


def test_the_state_database_is_usable_again_once_space_is_freed(sent, small_disk):
    state = sent.parent / "state"
    write_posts(sent.parent, {"2024-06-08-new.md": post("New Job", tags="[union]")})
    small_disk(state, "1m", keep=state)
    refused(digest(sent, COMMANDS["build"]), "full")
    (state / "filler").unlink()
    result = digest(sent, COMMANDS["build"])
    assert result.returncode == 0, result.stderr


NO_READ_ANYTHING = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


# (`digest run` logs it and goes on watching: the folder may become readable again)
@pytest.mark.parametrize("command", ["build", "check", "posts", "send", "preview"])
def test_an_unreadable_posts_folder_is_named_with_what_to_do(sent, command):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to read as root without DAC override")
    posts = sent.parent / "_posts"
    posts.chmod(0)
    try:
        result = digest(sent, COMMANDS[command], prefix=NO_READ_ANYTHING)
    finally:
        posts.chmod(0o755)
    refused(result, str(posts))  # where, and then what and what to do:
    assert "Permission denied" in result.stderr or "cannot be read" in result.stderr
    assert "readable" in result.stderr or "may read" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_templates_folder_that_is_not_there_is_named_at_its_line(tmp_path, command):
    config = digest_site(tmp_path, templates="my-templates")
    result = digest(config, COMMANDS[command])
    refused(result, f"{config}:", "digest.templates", "my-templates", "not a folder")


def test_the_templates_folder_removed_after_a_good_load_is_still_noticed(tmp_path):
    (tmp_path / "my-templates").mkdir()
    config = digest_site(tmp_path, templates="my-templates")
    assert run_cli(["--config", str(config), "build"])[0] == 0
    assert run_cli(["--config", str(config), "build"])[0] == 0  # the cached config now
    (tmp_path / "my-templates").rmdir()
    refused(digest(config, COMMANDS["preview"]), "digest.templates", "not a folder")


def test_a_bug_is_one_line_and_exit_2_and_its_traceback_shows_under_v(tmp_path):
    import click

    from digest.cli.commands import main

    @main.command("explode-for-test")
    def explode() -> None:
        nothing: dict[str, int] = {}
        nothing["missing"]  # a real KeyError, as a bug would raise

    try:
        code, _, err = run_cli(["explode-for-test"])
        assert code == 2
        assert "Traceback" not in err
        assert err.count("\n") == 1 and "KeyError" in err and "-v" in err
        code, _, err = run_cli(["-v", "explode-for-test"])
        assert code == 2
        assert "Traceback" in err and "missing" in err
    finally:
        main.commands.pop("explode-for-test")
    assert isinstance(main, click.Group)


def test_state_is_private_whatever_the_umask(tmp_path):
    config = digest_site(tmp_path)
    old = os.umask(0)
    try:
        assert run_cli(["--config", str(config), "build"])[0] == 0
        assert run_cli(["--config", str(config), "build"])[0] == 0  # the config cache
        assert run_cli(["--config", str(config), "send", "--as-of", AS_OF])[0] == 0
    finally:
        os.umask(old)
    state = tmp_path / "state"
    assert state.stat().st_mode & 0o777 == 0o700
    files = [p for p in state.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {DATABASE, "config.json", "sendlog.marker"}
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {
        p.name: "0o600" for p in files}


def test_an_existing_state_folder_open_to_all_is_made_private(tmp_path):
    config = digest_site(tmp_path)
    assert run_cli(["--config", str(config), "build"])[0] == 0
    state = tmp_path / "state"
    state.chmod(0o755)
    (state / DATABASE).chmod(0o644)
    assert run_cli(["--config", str(config), "build"])[0] == 0
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / DATABASE).stat().st_mode & 0o777 == 0o600


class _Planted:
    """A pickle that, if anything unpickles it, creates *path*."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch.__get__(self.path), ())  # type: ignore[return-value]


def test_a_planted_pickle_is_never_loaded(tmp_path):
    import pickle
    import sqlite3

    config = digest_site(tmp_path)
    assert run_cli(["--config", str(config), "build"])[0] == 0
    state = tmp_path / "state"
    ran = tmp_path / "code-ran"
    payload = pickle.dumps(_Planted(ran))
    assert not ran.exists()
    (state / "config.pickle").write_bytes(payload)
    db = sqlite3.connect(state / DATABASE)
    db.execute("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY, "
               "next_run_time FLOAT, job_state BLOB NOT NULL)")
    db.execute("INSERT INTO apscheduler_jobs VALUES ('digest', ?, ?)",
               (time.time() + 3600, payload))
    db.commit()
    db.close()
    for args in (["build"], ["status"], ["status", "--json"], ["check"]):
        result = digest(config, args)
        assert result.returncode in (0, 1), result.stderr
    assert not ran.exists()
    assert "next digest: 20" in digest(config, ["status"]).stdout  # still read, plainly
    pickle.loads(payload)  # the check above can fail: this is what a load would have done
    assert ran.exists()


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temporary_files_of_killed_writers_are_removed_at_the_next_start(sent):
    dead, alive = _dead_pid(), os.getppid()
    public, state = sent.parent / "public", sent.parent / "state"
    left = [public / f".feed.xml.{dead}.k1l2.tmp",
            public / "feed" / "by_tag" / f".union.xml.{dead}.x9.tmp",
            state / f".config.json.{dead}.q1.tmp",
            state / "archive" / f".2024-06-10.json.{dead}.z3.tmp",
            state / "outbox" / "tmp" / f"1717000000.M1Q1P{dead}R0a1b2c3d.host"]
    kept = [public / f".feed.xml.{alive}.busy.tmp",
            state / "outbox" / "tmp" / f"1717000000.M1Q2P{alive}R0a1b2c3d.host"]
    for path in left + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    assert run_cli(["--config", str(sent), "build"])[0] == 0
    write_posts(sent.parent, {"2024-06-14-next.md": post("Next Job", tags="[union]")})
    code, out, err = run_cli(["--config", str(sent), "send", "--as-of", "2024-06-17T09:00"])
    assert code == 0, (out, err)
    assert [p for p in left if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_the_cached_config_is_exactly_the_one_read(tmp_path):
    """Field for field and type for type (an int stays an int): the JSON cache replaced a
    pickle, and a value that came back as 24.0 instead of 24 broke the daemon's scheduler."""
    from digest.config import load_config
    from digest.config.file import read_config

    config = digest_site(tmp_path, templates=".")
    (tmp_path / "state").mkdir()
    read = read_config(config.resolve())
    load_config(config)
    assert (tmp_path / "state" / "config.json").is_file()
    cached = load_config(config)
    assert cached == read
    assert [type(v) for v in vars(cached.digest).values()] == [
        type(v) for v in vars(read.digest).values()]
    assert (type(cached.refresh_minutes), type(cached.digest.grace_hours)) == (
        type(read.refresh_minutes), type(read.digest.grace_hours))


OPEN_TOGETHER = """
import sys
from pathlib import Path
from digest.state.store import Store
for line in sys.stdin:  # a folder: open a new state there as soon as told
    Store(Path(line.strip()) / "state.sqlite3").close()
    print("done", flush=True)
"""


def test_senders_started_together_on_a_new_state_folder_all_open_it(tmp_path):
    """Each switches the new database to WAL mode at the same moment: SQLite answers that race
    with "locked" at once, whatever the busy timeout (before the retry, most runs of this
    failed in some round)."""
    workers, rounds = 4, 40
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_TOGETHER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    try:
        for n in range(rounds):
            folder = tmp_path / str(n)
            folder.mkdir()
            for p in procs:  # the same folder to all, as close together as it goes
                assert p.stdin is not None
                p.stdin.write(f"{folder}\n")
            for p in procs:
                assert p.stdin is not None
                p.stdin.flush()
            for p in procs:
                assert p.stdout is not None
                if p.stdout.readline() != "done\n":
                    p.wait(timeout=30)
                    assert p.stderr is not None
                    pytest.fail(f"round {n}: {p.stderr.read()[-1500:]}")
            db = sqlite3.connect(folder / "state.sqlite3")
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            db.close()
    finally:
        for p in procs:
            p.kill()
            p.wait()
