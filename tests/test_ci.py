"""CI runs exactly the README's second command, and that command lints before it tests."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def recipe(target: str) -> list[str]:
    """The command lines of `target` in the Makefile."""
    text = (REPO / "Makefile").read_text()
    match = re.search(rf"(?m)^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", text)
    assert match is not None, f"no `{target}:` rule in the Makefile"
    return [line.strip() for line in match.group(1).splitlines()]


def test_ci_runs_the_readmes_second_command() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"(?m)^(make \w+)\s+# (\d)\.", readme)
    ci = [line for line in (REPO / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]

    assert ("make test", "2") in commands, commands
    assert ci[-1] == "make test", ci
    assert "set -euo pipefail" in ci


def test_make_test_lints_then_runs_the_suite() -> None:
    lines = recipe("test")
    lint = next(index for index, line in enumerate(lines) if line.endswith(" lint"))
    pytest = next(index for index, line in enumerate(lines) if "pytest" in line)

    assert lint < pytest, lines
    assert any("ruff check" in line for line in recipe("lint"))
    assert any("ruff format --check" in line for line in recipe("lint"))
    assert any("mypy" in line for line in recipe("lint"))
