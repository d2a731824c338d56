"""The replay commands' options: exactly one target, and `--since` as a time or an age (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ffaas_cli.code_files import Runtime
from ffaas_cli.failures import UsageFailure
from ffaas_cli.replay_options import parse_since, selection_body, target_body

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_an_age_is_the_utc_time_that_long_before_now() -> None:
    assert parse_since("30m", NOW) == "2026-03-01T11:30:00.000000Z"
    assert parse_since("2h", NOW) == "2026-03-01T10:00:00.000000Z"
    assert parse_since("7d", NOW) == "2026-02-22T12:00:00.000000Z"
    assert parse_since("45s", NOW) == "2026-03-01T11:59:15.000000Z"


def test_a_time_is_passed_on_as_given_and_anything_else_is_bad_usage() -> None:
    assert parse_since("2026-01-09T23:45:48Z") == "2026-01-09T23:45:48Z"
    assert parse_since("2026-01-09T23:45:48.5+02:00") == "2026-01-09T23:45:48.5+02:00"
    for wrong in ("yesterday", "2026-01-09", "2h30m", "-1h", ""):
        with pytest.raises(UsageFailure, match="--since wants a time"):
            parse_since(wrong, NOW)


def test_a_target_is_exactly_one_option(tmp_path: Path) -> None:
    draft = tmp_path / "draft.ts"
    draft.write_text("function main(r: any) { return 1; }")

    assert target_body(deploy="d") == {"deploy_id": "d"}
    assert target_body(version="v") == {"processor_version_id": "v"}
    assert target_body(code=draft, runtime=Runtime.wasm) == {
        "code": "function main(r: any) { return 1; }",
        "language": "ts",
        "runtime": "wasm",
    }
    with pytest.raises(UsageFailure, match="give exactly one target: .*; none was given"):
        target_body()
    with pytest.raises(UsageFailure, match="--version and --code were given"):
        target_body(version="v", code=draft)
    with pytest.raises(UsageFailure, match="--runtime goes with --code"):
        target_body(version="v", runtime=Runtime.v8)


def test_a_selection_holds_only_what_was_given() -> None:
    assert selection_body(5, None, None) == {"limit": 5}
    assert selection_body(5, "2026-01-09T23:45:48Z", "threw") == {
        "limit": 5,
        "since": "2026-01-09T23:45:48Z",
        "outcome": "threw",
    }
    with pytest.raises(UsageFailure, match="--outcome wants"):
        selection_body(5, None, " ")
