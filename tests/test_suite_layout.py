"""The test suite's own shape: test modules share code through helpers.py and conftest.py,
never by importing one another (which runs the imported module's autouse fixtures nowhere,
ties unrelated suites together and makes pytest's collection order matter)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Every module *path* imports, at any depth (a function-level import counts too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    test_modules = {path.stem for path in TESTS.glob("test_*.py")}
    assert len(test_modules) > 10  # the glob found the suite
    offenders = {f"{path.name} imports {name}"
                 for path in sorted(TESTS.glob("*.py"))
                 for name in imported_modules(path)
                 if name.split(".")[0] in test_modules or name.split(".")[0].startswith("test_")}
    assert not offenders, "move what is shared into tests/helpers.py (or a fixture into " \
        f"conftest.py): {sorted(offenders)}"
