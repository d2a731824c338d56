"""Nothing a guest recorded runs in the console: bodies, headers, log lines and URLs are shown as text.

Two sources of hostile content, both real: a processor that logs, answers and is called with
markup (`<script>`, `<img onerror>`, `javascript:` links, `<svg onload>`), and a record put on
the conversation stream the way a data plane does, holding what no real HTTP exchange can carry
(a header *named* with HTML, a `javascript:` outbound URL, markup in ids and error details), as a
broken or hostile data plane could send. Every injected script would set `window.__pwned` or
open a dialog; the test reads the pages (the live list included) and requires neither happened,
that no element came out of the data, and that the markup is there, as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from playwright.sync_api import Dialog, Page, expect

from shared.conversations import STREAM_FIELD, ConversationRecord, new_id, new_item
from shared.keys import Keys
from shared.timestamps import utc_now
from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import running_cluster
from tests.e2e.console.conftest import sign_in

SCRIPT = "<script>window.__pwned = 'script'</script>"
IMG = "<img src=x onerror=\"window.__pwned = 'img'\">"
SVG = "<svg onload=\"window.__pwned = 'svg'\"></svg>"
LINK = "<a href=\"javascript:window.__pwned = 'link'\">click me</a>"
HOSTILE_PROCESSOR = f"""async function main(fh, request) {{
  fh.log({SCRIPT!r});
  fh.log({IMG!r});
  return {{code: 200, headers: {{"content-type": "text/html", "x-html": {SVG!r}}},
          body: {LINK!r} + request.body}};
}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("console-escaping"), redis_server) as cluster:
        yield cluster


@pytest.fixture
def watched(page: Page, cluster: Cluster) -> Iterator[Page]:
    """A signed-in page whose dialogs are recorded (and dismissed)."""
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    sign_in(page, cluster)
    yield page
    assert dialogs == [], f"a dialog opened: {dialogs}"


def assert_nothing_ran(page: Page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined", page.evaluate("window.__pwned")
    assert page.locator("main img, main svg, main script, main iframe").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0
    assert page.locator("[onerror], [onload], [onmouseover]").count() == 0


def hostile_record(cluster: Cluster) -> ConversationRecord:
    """What only a broken or hostile data plane could send: a header named with HTML, and worse."""
    evil_id = f'"><script>window.__pwned="id"</script>{new_id()}'
    incoming = new_item(
        "request",
        {
            "method": f"GET{SCRIPT}",
            "path": f"/{IMG}",
            "query": "q=" + SVG,
            "headers": {IMG: [SCRIPT], "x-fine": ["javascript:window.__pwned='header'"]},
            "body": '{"' + SCRIPT + '": "' + IMG.replace('"', '\\"') + '"}',
            "version": "HTTP/1.1",
        },
        inc=0,
    )
    outbound = new_item(
        "request",
        {
            "method": "POST",
            "url": "javascript:window.__pwned='url'",
            "path": "javascript:window.__pwned='url'",
            "query": "",
            "headers": {SVG: ["1"]},
            "body": "data:application/octet-stream;base64,PHNjcmlwdD4=",
            "version": "HTTP/1.1",
        },
        inc=1,
    )
    failed = new_item("response", {"error": LINK}, request=outbound.id)
    final = new_item(
        "response",
        {
            "code": 500,
            "headers": {"location": ["javascript:window.__pwned='location'"]},
            "body": SCRIPT,
            "body_truncated": True,
            "body_bytes": 999999,
            "version": "HTTP/1.1",
        },
        request=incoming.id,
    )
    now = utc_now()
    return ConversationRecord(
        id=new_id(),
        created_at=now,
        finished_at=now,
        duration_ms=1.0,
        outcome=f"error{IMG}",
        status=500,
        error=SCRIPT,
        error_detail=f"{IMG}\n{SVG}",
        endpoint_id=evil_id,
        items=[incoming, new_item("log", SCRIPT), outbound, failed, final],
    )


def publish(cluster: Cluster, record: ConversationRecord) -> None:
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        client.xadd(Keys(cluster.prefix).conversations, {STREAM_FIELD: record.pack()})
    finally:
        client.close()


def test_a_hostile_processor_run_is_shown_as_text(watched: Page, cluster: Cluster) -> None:
    processor = cluster.create_processor(HOSTILE_PROCESSOR, name=f"evil {SCRIPT}")
    run = cluster.run_processor(
        processor["id"],
        method="POST",
        content=IMG.encode(),
        headers={"x-evil": SVG, "content-type": "text/html"},
    )
    assert run.status_code == 200, run.text
    page = watched
    page.goto(f"{cluster.admin_url}/ui/conversations/{run.headers['fh-conversation-id']}")

    expect(page.locator(".event-log .log-line")).to_have_text([SCRIPT, IMG])
    expect(page.locator(".event-request table.kv")).to_contain_text(SVG)
    expect(page.locator(".event-request .body")).to_contain_text(IMG)
    expect(page.locator(".event-response table.kv")).to_contain_text(SVG)
    expect(page.locator(".event-response .body")).to_contain_text(LINK + IMG)
    expect(page.locator("#summary")).to_contain_text(f"evil {SCRIPT}")
    assert_nothing_ran(page)

    for listing in ("/ui/conversations", "/ui/processors", f"/ui/processors/{processor['id']}"):
        page.goto(f"{cluster.admin_url}{listing}")
        expect(page.locator("main td, main h1").get_by_text(f"evil {SCRIPT}").first).to_be_visible()
        assert_nothing_ran(page)


def test_a_hostile_record_is_shown_as_text_on_its_page_and_in_the_live_list(
    watched: Page, cluster: Cluster
) -> None:
    page = watched
    page.goto(f"{cluster.admin_url}/ui/conversations")
    expect(page.locator("#live-state")).to_have_text("following new runs")
    record = hostile_record(cluster)
    publish(cluster, record)

    row = page.locator("#conversations tbody tr").filter(has_text=record.items[0].payload["path"])
    expect(row).to_have_count(1)  # arrived live, filled as text
    expect(row).to_contain_text(f"GET{SCRIPT}")
    assert_nothing_ran(page)
    page.reload()  # and rendered by the server
    expect(page.locator("#conversations tbody tr").first).to_contain_text(f"/{IMG}")
    assert_nothing_ran(page)

    page.goto(f"{cluster.admin_url}/ui/conversations/{record.id}")
    expect(page.locator(".event-request table.kv th").first).to_have_text(IMG)  # the header's name
    expect(page.locator(".event-request .json-tree")).to_contain_text(SCRIPT)  # a JSON key
    expect(page.locator(".event-exchange .request-line")).to_contain_text("javascript:window.__pwned='url'")
    expect(page.locator(".event-exchange .half").last.locator(".error")).to_have_text(LINK)
    expect(page.locator(".event-exchange .body-binary")).to_contain_text("Binary body: 8 bytes")
    expect(page.locator(".event-response .truncated")).to_contain_text("999999 bytes")
    expect(page.locator("#run-error")).to_contain_text(SCRIPT)
    expect(page.locator(".error-detail pre")).to_have_text(f"{IMG}\n{SVG}")
    link = page.locator("#summary a").first
    assert not re.match(r"\s*javascript:", link.get_attribute("href") or "", re.IGNORECASE)
    assert_nothing_ran(page)
    # Following the "what ran" link is a same-site path, percent-encoded.
    assert (link.get_attribute("href") or "").startswith("/ui/endpoints/%22%3E%3Cscript%3E")


def test_every_console_page_sends_a_strict_content_security_policy(cluster: Cluster) -> None:
    for path in ("/ui/login", "/ui/conversations", "/ui/static/console.js", "/"):
        policy = cluster.http.get(f"{cluster.admin_url}{path}").headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'", policy
        assert directives["default-src"] == "'none'"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert re.fullmatch(r"'self' 'nonce-[\w-]{24}'", directives["style-src"]), policy
