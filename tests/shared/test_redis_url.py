"""A Redis URL's password never reaches a log line or an error message."""

from __future__ import annotations

import pytest

from shared.redis import connect, redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://app:hunter2@redis.example.com:6380/1", "rediss://app:***@redis.example.com:6380/1"),
        ("redis://app@redis/0", "redis://app@redis/0"),
    ],
)
def test_the_password_is_replaced(url: str, shown: str) -> None:
    assert redacted(url) == shown


async def test_a_failed_connection_names_the_url_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1

    with pytest.raises(RuntimeError) as failed:
        await connect(url, attempts=2, delay_s=0)

    assert "redis://:***@127.0.0.1:1/0" in str(failed.value)
    assert "hunter2" not in str(failed.value) and "hunter2" not in caplog.text
    assert "redis://:***@127.0.0.1:1/0" in caplog.text
