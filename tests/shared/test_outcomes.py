"""Run outcomes are one list, `RunOutcome`, and the README documents exactly that list."""

from __future__ import annotations

import ast
from pathlib import Path

from data_plane.runtime.wasm import Outcome
from shared.conversations import RunOutcome, outcome_table

REPO = Path(__file__).resolve().parents[2]


def test_readme_outcome_table_is_generated_from_the_enum() -> None:
    readme = (REPO / "README.md").read_text()
    assert outcome_table() in readme, (
        "README.md's outcome table differs from shared.conversations.outcome_table(); paste this:\n"
        + outcome_table()
    )


def test_every_runtime_outcome_is_a_run_outcome() -> None:
    assert {outcome.value for outcome in Outcome} <= {outcome.value for outcome in RunOutcome}


def test_wire_values_are_the_lower_case_names() -> None:
    assert all(outcome.value == outcome.name.lower() for outcome in RunOutcome)


def test_no_outcome_is_written_as_a_bare_string_in_the_data_plane() -> None:
    """Every outcome the data plane produces goes through the enum (mypy checks the types; this
    catches a string literal equal to an outcome passed where the enum belongs)."""
    values = {outcome.value for outcome in RunOutcome}
    found = []
    for path in (REPO / "data_plane").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "outcome":
                value = node.value
                if isinstance(value, ast.Constant) and value.value in values:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Call):
                for argument in node.args:
                    if isinstance(argument, ast.Constant) and argument.value in values - {"error"}:
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}: {argument.value!r}")
    assert not found, f"outcomes as bare strings: {found}"
