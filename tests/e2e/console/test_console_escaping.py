"""Nothing a guest recorded runs in the console: bodies, headers, log lines and URLs are shown as text,
on a conversation's page and in a replay's comparison with its original (the diff quotes them too).

Two sources of hostile content, both real: a processor that logs, answers and is called with
markup (`<script>`, `<img onerror>`, `javascript:` links, `<svg onload>`), and a record put on
the conversation stream the way a data plane does, holding what no real HTTP exchange can carry
(a header *named* with HTML, a `javascript:` outbound URL, markup in ids and error details), as a
broken or hostile data plane could send. Every injected script would set `window.__pwned` or
open a dialog; the test reads the pages (the live list included) and requires neither happened,
that no element came out of the data, and that the markup is there, as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace

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
HOSTILE_REPLAYED = f"""async function main(fh, request) {{
  fh.log({LINK!r});
  fh.log({SVG!r});
  return {{code: 202, headers: {{"content-type": "text/html", "x-html": {IMG!r}, "x-more": {SCRIPT!r}}},
          body: {SCRIPT!r} + request.body}};
}}
"""
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


def hostile_pair() -> tuple[ConversationRecord, ConversationRecord]:
    """A recorded run and a replay of it, as a hostile data plane could send them: markup in header
    names, JSON keys (so in the diff's JSON Pointers), log lines, outbound URLs, errors and the mode."""
    now = utc_now()

    def run(
        headers: dict[str, list[str]], body: object, log: str, url: str, **fields: object
    ) -> ConversationRecord:
        incoming = new_item(
            "request", {"method": "POST", "path": "/x", "query": "", "headers": {}, "body": ""}, inc=0
        )
        outbound = new_item("request", {"method": "GET", "url": url, "headers": {}, "body": ""}, inc=1)
        answer = new_item("response", {"error": f"{LINK} {url}"}, request=outbound.id)
        final = new_item(
            "response", {"code": 200, "headers": headers, "body": json.dumps(body)}, request=incoming.id
        )
        return ConversationRecord(
            id=new_id(),
            created_at=now,
            finished_at=now,
            duration_ms=1.0,
            outcome="completed",
            status=200,
            error=None,
            error_detail=None,
            request_processor_id=new_id(),
            items=[incoming, new_item("log", log), outbound, answer, final],
            **fields,  # type: ignore[arg-type]
        )

    original = run({IMG: [SCRIPT], "x-same": ["1"]}, {SCRIPT: 1, "keep": LINK}, SVG, f"http://a/{IMG}")
    replayed = run(
        {IMG: [SVG], SVG: ["new"]},
        {IMG: 2, "keep": LINK},
        LINK,
        f"http://b/{SCRIPT}",
        replay_of=original.id,
        replay_mode=f"recorded{SCRIPT}",
    )
    return original, replace(replayed, request_processor_id=original.request_processor_id)


def test_hostile_content_in_a_replays_diff_is_shown_as_text(watched: Page, cluster: Cluster) -> None:
    processor = cluster.create_processor(HOSTILE_PROCESSOR, name=f"evil {SCRIPT}")
    run = cluster.run_processor(processor["id"], method="POST", content=IMG.encode())
    assert run.status_code == 200, run.text
    changed = cluster.admin.put(
        f"{cluster.admin_url}/admin/processor/{processor['id']}",
        json={"name": f"evil {SCRIPT}", "language": "js", "runtime": "v8", "code": HOSTILE_REPLAYED},
    ).json()
    page = watched
    page.goto(f"{cluster.admin_url}/ui/conversations/{run.headers['fh-conversation-id']}")
    page.locator("#replay > summary").click()
    page.get_by_label("Version").select_option(f"processor_version_id:{changed['active_version_id']}")
    page.get_by_role("button", name="Replay", exact=True).click()

    comparison = page.locator("#replay-result #comparison")  # put into the page by a script
    expect(comparison.locator("#comparison-verdict")).to_have_text(
        "The replay differs in status, headers, body, logs"
    )
    expect(comparison.locator("#part-logs .unified .diff-remove")).to_have_text([f"-{SCRIPT}", f"-{IMG}"])
    expect(comparison.locator("#part-logs .unified .diff-add")).to_have_text([f"+{LINK}", f"+{SVG}"])
    expect(comparison.locator("#part-body .unified .diff-add")).to_have_text([f"+{SCRIPT}{IMG}"])
    expect(comparison.locator("#part-headers tr.mark-added")).to_contain_text([SCRIPT])
    expect(comparison.locator("#part-headers [data-side=replay] tr.mark-changed")).to_contain_text([IMG])
    assert_nothing_ran(page)
    comparison.locator("#replay-link").click()
    page.locator("#compare-link").click()  # the comparison as a page of its own
    expect(page.locator("#part-body [data-side=replay] pre")).to_have_text(f"{SCRIPT}{IMG}")
    assert_nothing_ran(page)

    batch = cluster.admin.post(
        f"{cluster.admin_url}/admin/processor/{processor['id']}/replay",
        json={"processor_version_id": changed["version_history"][0]["id"], "limit": 5},
    )
    assert batch.status_code == 202, batch.text
    page.goto(f"{cluster.admin_url}/ui/replays/{batch.json()['id']}")
    expect(page.locator("#batch-report")).to_have_attribute("data-state", "finished")
    expect(page.locator(".crumbs")).to_contain_text(f"evil {SCRIPT}")
    assert_nothing_ran(page)


def test_a_hostile_replay_record_is_compared_as_text(watched: Page, cluster: Cluster) -> None:
    original, replayed = hostile_pair()
    publish(cluster, original)
    publish(cluster, replayed)
    page = watched
    page.goto(f"{cluster.admin_url}/ui/conversations/{replayed.id}/compare")

    headers = page.locator("#part-headers")
    expect(headers.locator("[data-side=original] tr.mark-changed th")).to_have_text([IMG])
    expect(headers.locator("[data-side=replay] tr.mark-added th")).to_have_text([SVG])
    expect(headers.locator("[data-side=original] tr.mark-removed th")).to_have_text(["x-same"])
    pointers = page.locator("#part-body .changes .pointer")
    # A key removed, a key added; "/" in a key is "~1" in a JSON Pointer (RFC 6901).
    expect(pointers).to_have_text(["/" + SCRIPT.replace("/", "~1"), f"/{IMG}"])
    expect(page.locator("#part-logs .unified .diff-add")).to_have_text([f"+{LINK}"])
    pair = page.locator("#part-outbound .outbound-pair")
    expect(pair.locator("[data-side=original] .url")).to_have_text(f"http://a/{IMG}")
    expect(pair.locator("[data-side=replay] .error")).to_have_text(f"{LINK} http://b/{SCRIPT}")
    expect(page.locator(".side-replay h3")).to_have_text(f"Replay · outbound recorded{SCRIPT}")
    assert_nothing_ran(page)
    page.goto(f"{cluster.admin_url}/ui/conversations/{replayed.id}")
    expect(page.locator("#summary")).to_contain_text(f"recorded{SCRIPT} outbound")
    assert_nothing_ran(page)
