"""`digest preview` and `digest send --dry-run` only look: the state folder is left byte for
byte as it was (every file's bytes and the listing), whether it holds a week of history or
does not exist yet (then it is not created)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import MONDAY, SECRET, WEEK, digest_site

from digest.state.sendlog import SendLog
from digest.state.store import Store


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


def fingerprint(folder: Path) -> dict[str, str]:
    """Every path under *folder* (folders too) → a hash of its bytes."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir()
            else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


LOOKS = [["send", "--dry-run"], ["preview"]]


@pytest.mark.parametrize("look", LOOKS, ids=["dry-run", "preview"])
def test_looking_leaves_an_existing_state_byte_for_byte_unchanged(
        tmp_path: Path, look: list[str]) -> None:
    cfg = digest_site(tmp_path)
    config = ["--config", str(cfg)]
    assert run_cli([*config, "build"])[0] == 0
    assert run_cli([*config, "send", "--as-of", MONDAY.isoformat()])[0] == 0
    # a week later: new posts, a new subscriber and an edited subscribers file, all of
    # which a real send would record (entry ids, parse cache, the subscribers' last copy)
    (tmp_path / "_posts" / "2024-06-12-new.md").write_text(
        "---\ntitle: Brand New\ntags: [union]\n---\nText.\n", encoding="utf-8")
    with (tmp_path / "subscribers.yaml").open("a", encoding="utf-8") as subscribers:
        subscribers.write("- email: late@example.org\n")
    before = fingerprint(tmp_path / "state")
    out = tmp_path / "looked"
    code, output, err = run_cli([*config, *look, "--as-of", (MONDAY + WEEK).isoformat(),
                                 *(["--out", str(out)] if look == ["preview"] else [])])
    assert code == 0, err
    assert "1 new posts" in output
    assert fingerprint(tmp_path / "state") == before


@pytest.mark.parametrize("look", LOOKS, ids=["dry-run", "preview"])
def test_looking_before_any_build_creates_no_state_folder(tmp_path: Path,
                                                         look: list[str]) -> None:
    cfg = digest_site(tmp_path)
    code, output, err = run_cli(["--config", str(cfg), *look, "--as-of", MONDAY.isoformat()])
    assert code == 0, err
    assert "4 new posts" in output
    assert not (tmp_path / "state").exists()


def test_preview_by_default_writes_outside_the_state_folder(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    code, output, err = run_cli(["--config", str(cfg), "preview", "--as-of",
                                 MONDAY.isoformat()])
    assert code == 0, err
    files = [Path(line) for line in output.splitlines()[1:]]
    assert files and all(f.is_file() for f in files)
    folder = files[0].parent
    assert tmp_path / "state" not in folder.parents
    assert folder.stat().st_mode & 0o077 == 0  # the .eml files carry subscribers' addresses


def test_a_real_send_after_looking_still_records_everything(tmp_path: Path) -> None:
    cfg = digest_site(tmp_path)
    config = ["--config", str(cfg)]
    assert run_cli([*config, "send", "--dry-run", "--as-of", MONDAY.isoformat()])[0] == 0
    assert run_cli([*config, "send", "--as-of", MONDAY.isoformat()])[0] == 0
    store = Store.open(tmp_path / "state")
    try:
        latest = SendLog(store).latest_run()
        assert latest is not None
        assert SendLog(store).counts(latest)["sent"] == 3
        assert SendLog(store).snapshot() is not None
    finally:
        store.close()
