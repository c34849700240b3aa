"""What every command shares: --config before or after the command, --as-of for the clock
(the old --now still works, unlisted), help text everywhere; and `digest unsubscribe` of an
address that is not on the list."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml
from conftest import make_site, output, post, run_cli

from digest.cli.commands import main
from digest.config import load_config
from digest.state.sendlog import SendLog
from digest.state.store import Store

POSTS = {"2024-06-04-a.md": post("A", tags="[union]"),
         "2024-07-01-later.md": post("Later", tags="[union]")}

# every command (a group's as "group command"), with the arguments it needs to get as far
# as reading its config
COMMANDS: dict[str, list[str]] = {
    "build": [], "check": [], "posts": [], "send": ["--dry-run"], "preview": [],
    "unsubscribe": ["x@example.org"], "resubscribe": ["x@example.org"], "run": [],
    "serve": [], "status": [], "init": [], "bounces": [], "signup-form": [],
    "subscribers import": ["members.csv"], "deliveries": [],
    "subscribers list": [], "subscribers show": ["x@example.org"], "subscribers export": [],
    "pause": ["2024-06-10", "--reason", "x"], "resume": ["2024-06-10"],
    "cancel": ["2024-06-10", "--reason", "x"], "admin-password": [], "copy-state": [],
}


def test_the_table_above_covers_every_command() -> None:
    assert isinstance(main, click.Group)
    leaves = {" ".join(path) for path in _commands(main)
              if path and not isinstance(_command(path), click.Group)}
    assert set(COMMANDS) == leaves


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_takes_config_after_the_command(tmp_path: Path, command: str) -> None:
    """The file given after the command is the one read (the project's own config.yaml,
    the default from where the tests run, would load fine)."""
    bad = tmp_path / "config.yaml"
    bad.write_text("postz: _posts\n", encoding="utf-8")
    code, _, err = run_cli([*command.split(), *COMMANDS[command], "--config", str(bad)])
    assert code == 2
    if command == "init":  # init writes the config: it refuses to overwrite this one
        assert f"error: {bad} already exists" in err
    else:
        assert f"error: {bad}:1: unknown key 'postz' (did you mean 'posts'?)" in err


def test_config_after_the_command_wins_over_the_one_before(tmp_path: Path) -> None:
    good = make_site(tmp_path, POSTS)
    code, out, err = run_cli(["--config", str(tmp_path / "nope.yaml"), "build",
                              "--config", str(good), "--as-of", "2024-06-30T12:00:00"])
    assert code == 0, err
    assert out.startswith("1 posts")
    assert (output(good) / "feed.xml").is_file()


@pytest.mark.parametrize("command", ["build", "check", "posts", "send", "preview"])
def test_as_of_is_the_clock_option_of_every_command_that_has_one(command: str) -> None:
    code, out, _ = run_cli([command, "--help"])
    assert code == 0
    assert "--as-of DATETIME" in out
    assert "--now" not in out  # the old name works but is not shown


@pytest.mark.parametrize("option", ["--as-of", "--now"])
def test_as_of_and_the_old_now_decide_what_is_future(tmp_path: Path, option: str) -> None:
    config = make_site(tmp_path, POSTS)
    for command, shown in (("posts", "2024-06-04"), ("build", "1 future")):
        code, out, _ = run_cli(["--config", str(config), command, option, "2024-06-30T12:00"])
        assert code == 0
        assert shown in out and "2024-07-01" not in out
    code, _, err = run_cli(["--config", str(config), "check", option, "2024-06-30T12:00"])
    assert "1 posts OK" in err
    code, _, err = run_cli(["--config", str(config), "check", option, "2024-07-02T12:00"])
    assert "2 posts OK" in err


def test_as_of_and_now_together_must_agree(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS)
    code, _, err = run_cli(["--config", str(config), "build", "--as-of", "2024-06-30T12:00",
                            "--now", "2024-07-30T12:00"])
    assert code == 2
    assert "--now is the old name of --as-of: give only one of them" in err


# unsubscribe of an address not on the list -------------------------------------------------

def _digest_site(tmp_path: Path) -> Path:
    (tmp_path / "subscribers.yaml").write_text(
        yaml.safe_dump([{"email": "ana@example.org"}]), encoding="utf-8")
    return make_site(tmp_path, POSTS, extra={
        "subscribers": "subscribers.yaml", "digest": {"from": "Jobs <jobs@example.org>"}})


def _suppressed(config: Path) -> set[str]:
    store = Store.open(load_config(config).state)
    try:
        return SendLog(store).suppressed()
    finally:
        store.close()


def test_unsubscribe_of_an_unknown_address_says_so_and_suppresses_it(tmp_path: Path) -> None:
    config = _digest_site(tmp_path)
    code, out, _ = run_cli(["--config", str(config), "unsubscribe", "Stranger@Example.org"])
    assert code == 0
    assert out == ("stranger@example.org: not on the list (not in subscribers.yaml); added to "
                   "the suppression list anyway, so it gets no digest if it is added later\n")
    assert _suppressed(config) == {"stranger@example.org"}
    code, out, _ = run_cli(["--config", str(config), "unsubscribe", "stranger@example.org"])
    assert out == ("stranger@example.org: not on the list (not in subscribers.yaml), and "
                   "already on the suppression list\n")


def test_unsubscribe_of_a_subscriber_says_only_unsubscribed(tmp_path: Path) -> None:
    config = _digest_site(tmp_path)
    code, out, _ = run_cli(["--config", str(config), "unsubscribe", "ANA@example.org"])
    assert (code, out) == (0, "ana@example.org: unsubscribed\n")
    assert _suppressed(config) == {"ana@example.org"}


def test_unsubscribe_without_a_subscribers_file_says_there_is_no_list(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS)
    code, out, _ = run_cli(["--config", str(config), "unsubscribe", "x@example.org"])
    assert code == 0
    assert out.startswith("x@example.org: not on the list (no subscribers file is configured)")


def test_resubscribe_of_an_unknown_address_notes_it_gets_nothing(tmp_path: Path) -> None:
    config = _digest_site(tmp_path)
    run_cli(["--config", str(config), "unsubscribe", "x@example.org"])
    code, out, err = run_cli(["--config", str(config), "resubscribe", "x@example.org"])
    assert (code, out) == (0, "x@example.org: resubscribed\n")
    assert "x@example.org is not on the list (not in subscribers.yaml)" in err


# help ----------------------------------------------------------------------------------------

def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*path, name)))
        else:
            found.append((*path, name))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=lambda p: " ".join(p) or "digest")
def test_every_command_and_option_has_help_text(path: tuple[str, ...]) -> None:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert (command.help or "").strip(), f"digest {' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{param.opts} of {path} has no help"
    code, out, err = run_cli([*path, "--help"])
    assert (code, err) == (0, "")
    assert (command.help or "").strip().split("\n")[0][:30] in " ".join(out.split())


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`digest status | head -1`: the pipe closes before digest has written; no "error:"
    (it once said "Broken pipe; check that it exists ...") and no traceback, exit 141 as a
    shell reports a command stopped by SIGPIPE."""
    import os
    import subprocess
    import sys

    from conftest import PROJECT, make_site

    config = make_site(tmp_path, {})
    read, write = os.pipe()
    os.close(read)  # the reader is gone before digest starts writing
    try:
        done = subprocess.run([sys.executable, "-m", "digest", "--config", str(config),
                               "status"], stdout=write, stderr=subprocess.PIPE, text=True,
                              cwd=PROJECT, timeout=60, check=False)
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
