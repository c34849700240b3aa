"""Which installed packages differ from the lock: printed before the newest-versions pass
(`make test-latest`), so when it fails the releases to suspect are already on screen.

    python scripts/lock_drift.py requirements.lock

Always exits 0: drift is expected; only the checks after it decide.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker  # pytest's dependency, so in every test venv

# `name==version ; marker \` at the start of a line of the lock
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$",
                 re.MULTILINE)


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def drift(lock: Path) -> list[str]:
    """One line per package whose installed version is not the locked one."""
    locked = {_key(name): version
              for name, version, marker in PIN.findall(lock.read_text("utf-8"))
              if not marker or Marker(marker).evaluate()}  # colorama: Windows only
    installed = {_key(d.metadata["Name"]): d.version for d in metadata.distributions()
                 if d.metadata["Name"]}
    lines = []
    for name in sorted(locked.keys() | installed.keys()):
        old, new = locked.get(name), installed.get(name)
        if old != new and name != "digest":
            lines.append(f"  {name}: {old or '(not locked)'} -> {new or '(not installed)'}")
    return lines


def main() -> int:
    lock = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")
    lines = drift(lock)
    print(f"newest versions against {lock}: "
          + (f"{len(lines)} differ\n" + "\n".join(lines) if lines else "all as locked"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
