"""The console in a real browser, used as a person would: sign in, endpoints, processors, conversations.

Everything is real: redis-server, a control plane and a data plane as processes, Debian's
Chromium (Playwright), and a local HTTP server that processors call. The cluster requires
the admin token, so every test signs in through the form first. Each page a test reaches is
photographed at 1280 and 390 px (build/screenshots/), and must not overflow sideways.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RedisServer
from tests.e2e.cluster import UUID, Cluster, TargetServer
from tests.e2e.conftest import running_cluster
from tests.e2e.console.conftest import readme_screenshot, screenshot, sign_in

RELAY = """async function main(fh, request) {
  fh.log("relaying", request.method, "to the target");
  const answer = await fh.dispatch_request(TARGET + "/hooks?status=202", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({relayed: JSON.parse(request.body)}),
  });
  return {code: 201, headers: {"content-type": "application/json"}, body: {target_said: answer.code}};
}
"""
TS_WITH_ERROR = """async function main(fh: any, request: any) {
  const greeting: string = "hello";
  return greeting +;
}
"""


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1"}
    with running_cluster(tmp_path_factory.mktemp("console"), redis_server, settings=settings) as cluster:
        yield cluster


@pytest.fixture
def signed_in(page: Page, cluster: Cluster) -> Page:
    sign_in(page, cluster)
    return page


def test_signing_in_asks_for_the_token_once_and_signing_out_ends_it(page: Page, cluster: Cluster) -> None:
    page.goto(f"{cluster.admin_url}/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    screenshot(page, "login")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")

    sign_in(page, cluster)
    cookie = next(c for c in page.context.cookies() if c["name"] == "ffaas_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    missing = page.goto(f"{cluster.admin_url}/ui/no-such-page")
    assert missing is not None and missing.status == 404
    expect(page.locator("main")).to_contain_text("There is no console page at /ui/no-such-page")
    page.goto(f"{cluster.admin_url}/ui/endpoints")  # no second question
    expect(page.get_by_role("heading", name="Endpoints", exact=True)).to_be_visible()
    expect(page.locator("#open-api")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{cluster.admin_url}/ui/login")
    page.goto(f"{cluster.admin_url}/ui/endpoints")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fendpoints"))


def test_create_an_endpoint_and_deploy_a_module_through_the_page(
    signed_in: Page, cluster: Cluster, examples: Path
) -> None:
    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/endpoints")
    page.get_by_label("Name").fill("page-made")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(rf"/ui/endpoints/{UUID.pattern}$"))
    endpoint_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_text("Nothing deployed yet")).to_be_visible()

    page.get_by_label(re.compile("WebAssembly module")).set_input_files(str(examples / "echo.wasm"))
    page.get_by_role("button", name="Upload and deploy").click()
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_have_class("active")
    endpoint = cluster.get_endpoint(endpoint_id).json()
    assert endpoint["active_deploy_id"] == endpoint["deploy_history"][0]["id"]
    expect(history.first).to_contain_text(endpoint["deploy_history"][0]["hash"])
    screenshot(page, "endpoint")
    page.goto(f"{cluster.admin_url}/ui/endpoints")
    expect(page.get_by_role("link", name="page-made")).to_be_visible()
    screenshot(page, "endpoints")


def test_a_refused_module_says_why_on_the_page(signed_in: Page, cluster: Cluster, tmp_path: Path) -> None:
    endpoint_id = cluster.create_endpoint("refusing")["id"]
    not_wasm = tmp_path / "not.wasm"
    not_wasm.write_bytes(b"this is no module" * 200_000)  # 3.4 MB: the upload reports its progress
    signed_in.goto(f"{cluster.admin_url}/ui/endpoints/{endpoint_id}")
    signed_in.get_by_label(re.compile("WebAssembly module")).set_input_files(str(not_wasm))
    signed_in.get_by_role("button", name="Upload and deploy").click()
    expect(signed_in.locator("#deploy [data-error]")).to_contain_text("not a WebAssembly module")
    progress = signed_in.locator("#deploy progress")
    expect(progress).to_be_visible()
    assert progress.evaluate("bar => bar.value") == 100
    assert cluster.get_endpoint(endpoint_id).json()["deploy_history"] == []


def test_rollback_is_one_click_and_the_environment_editor_saves(
    signed_in: Page, cluster: Cluster, echo_wasm: bytes, hello_wasm: bytes
) -> None:
    endpoint_id = cluster.create_endpoint("rolling")["id"]
    first = cluster.deploy(endpoint_id, echo_wasm)
    cluster.deploy(endpoint_id, hello_wasm)
    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/endpoints/{endpoint_id}")
    page.locator(f'tr[data-deploy-id="{first["id"]}"]').get_by_role(
        "button", name="Roll back to this"
    ).click()
    expect(page.locator(f'tr[data-deploy-id="{first["id"]}"]')).to_have_class("active")
    assert cluster.get_endpoint(endpoint_id).json()["active_deploy_id"] == first["id"]

    page.get_by_role("button", name="Add a variable").click()
    page.locator(".env-row").last.get_by_label("Name").fill("GREETING")
    page.locator(".env-row").last.get_by_label("Value").fill("bonjour <b>tout</b>")
    page.get_by_role("button", name="Save environment").click()
    expect(page.locator("#environment [data-status]")).to_have_text("saved")
    env = cluster.admin.get(f"{cluster.admin_url}/endpoint/{endpoint_id}/env").json()
    assert env == {"GREETING": "bonjour <b>tout</b>"}
    page.reload()
    expect(page.locator(".env-row input[name=env-value]")).to_have_value("bonjour <b>tout</b>")


def test_a_test_request_opens_the_timeline_of_the_real_run(
    signed_in: Page, cluster: Cluster, target: TargetServer
) -> None:
    processor = cluster.create_processor(f"const TARGET = {target.url!r};\n{RELAY}", name="relay")
    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/processors/{processor['id']}")
    form = page.locator("#test-request")
    form.get_by_label("Query").fill("source=console")
    form.get_by_label("Headers, one per line").fill("Content-Type: application/json\nX-Trace: console-test")
    form.get_by_label("Body").fill('{"order": 42, "items": ["a", "b"]}')
    form.get_by_role("button", name="Send and open the conversation").click()
    expect(page).to_have_url(re.compile(rf"/ui/conversations/{UUID.pattern}$"))
    conversation_id = page.url.rsplit("/", 1)[1]

    stored = cluster.http.get(f"{cluster.admin_url}/conversation/{conversation_id}").json()
    assert stored["request_processor_id"] == processor["id"] and stored["status"] == 201
    assert [r.path for r in target.received][-1] == "/hooks?status=202"
    timeline = page.locator("#timeline")
    request = timeline.locator(".event-request")
    expect(request.locator(".request-line")).to_contain_text(
        f"POST /processor/{processor['id']}/run_with_prelude"
    )
    expect(request.locator(".query")).to_have_text("?source=console")
    expect(request.locator("table.kv")).to_contain_text("console-test")
    expect(request.locator(".json-tree")).to_contain_text('"order": 42')
    expect(timeline.locator(".event-log .log-line")).to_have_text("relaying POST to the target")
    exchange = timeline.locator(".event-exchange")
    expect(exchange.locator("h2 .status")).to_have_text("202")
    expect(exchange.locator(".request-line")).to_contain_text(f"POST {target.url}/hooks?status=202")
    expect(exchange.locator(".half").first.locator(".json-tree")).to_contain_text('"relayed"')
    expect(exchange.locator(".half").last.locator(".json-tree")).to_contain_text('"received"')
    expect(exchange.locator(".elapsed")).to_have_text(re.compile(r"^\d+\.\d ms$"))
    final = timeline.locator(".event-response")
    expect(final.locator("h2 .status")).to_have_text("201")
    expect(final.locator(".json-tree")).to_contain_text('"target_said": 202')
    expect(page.locator("#summary")).to_contain_text("completed")
    expect(page.locator("#summary")).to_contain_text("relay")
    screenshot(page, "conversation")
    readme_screenshot(page, "console-conversation.png")
    # The JSON tree folds: closing the request body's object hides its keys.
    request.locator(".json-tree > details > summary").click()
    expect(request.locator(".json-tree").get_by_text('"order"')).to_be_hidden()


def test_an_endpoint_test_request_shows_the_modules_answer(
    signed_in: Page, cluster: Cluster, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("echoing", echo_wasm)
    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/endpoints/{endpoint_id}")
    form = page.locator("#test-request")
    form.get_by_label("Sub-path").fill("/a/b")
    form.get_by_label("Body").fill("plain words")
    form.get_by_role("button", name="Send and open the conversation").click()
    expect(page).to_have_url(re.compile(rf"/ui/conversations/{UUID.pattern}$"))
    expect(page.locator(".event-request .request-line")).to_contain_text(f"POST /{endpoint_id}/a/b")
    expect(page.locator(".event-request .body")).to_contain_text("plain words")
    expect(page.locator(".event-response h2 .status")).to_have_text("200")
    expect(page.locator(".event-response .body")).to_contain_text("plain words")


def test_the_live_list_shows_a_new_run_without_a_reload(signed_in: Page, cluster: Cluster) -> None:
    processor = cluster.create_processor('function main(request) { return "live"; }', name="live-one")
    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/conversations")
    expect(page.locator("#live-state")).to_have_text("following new runs")
    page.evaluate("window.__sameDocument = true")

    run = cluster.run_processor(processor["id"], prelude=False)
    conversation_id = run.headers["fh-conversation-id"]

    row = page.locator(f'#conversations tbody tr[data-conversation-id="{conversation_id}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("live-one")
    expect(row).to_contain_text("completed")
    expect(page.locator("#conversations tbody tr").first).to_have_attribute(
        "data-conversation-id", conversation_id
    )
    assert page.evaluate("window.__sameDocument") is True
    row.get_by_role("link").click()
    expect(page).to_have_url(f"{cluster.admin_url}/ui/conversations/{conversation_id}")


def test_the_list_filters_and_pages(signed_in: Page, cluster: Cluster) -> None:
    thrower = cluster.create_processor('function main(request) { throw new Error("no"); }', name="thrower")
    counter = cluster.create_processor('function main(request) { return "n"; }', name="counter")
    failed = cluster.run_processor(thrower["id"], prelude=False).headers["fh-conversation-id"]
    made = [
        cluster.run_processor(counter["id"], prelude=False).headers["fh-conversation-id"] for _ in range(55)
    ]
    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/conversations")
    page.get_by_label("Processor").select_option(label="counter")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#conversations tbody tr")
    expect(rows).to_have_count(50)
    assert rows.evaluate_all("rows => rows.map(row => row.dataset.conversationId)") == made[::-1][:50]
    screenshot(page, "conversations")
    page.get_by_role("link", name="Older").click()
    expect(rows).to_have_count(5)
    assert rows.evaluate_all("rows => rows.map(row => row.dataset.conversationId)") == made[::-1][50:]

    page.goto(f"{cluster.admin_url}/ui/conversations")
    page.get_by_label("Outcome").select_option("threw")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-conversation-id", failed)
    rows.first.get_by_role("link").click()
    expect(page.locator("#run-error")).to_contain_text("Error: no")
    expect(page.locator(".error-detail")).to_be_visible()
    screenshot(page, "conversation-failed")


def test_a_typescript_error_is_shown_at_its_line_on_save(signed_in: Page, cluster: Cluster) -> None:
    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/processors/new")
    page.get_by_label("Name").fill("typed")
    page.get_by_label("Language").select_option("ts")
    page.get_by_label("Runtime").select_option("wasm")
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(TS_WITH_ERROR)
    page.get_by_role("button", name="Create").click()

    # The editor's own styles apply despite the strict policy (they carry the page's style nonce).
    assert page.locator(".cm-gutters").evaluate("el => getComputedStyle(el).display") == "flex"
    shown = page.locator(".cm-compile-error")
    expect(shown).to_have_text(re.compile(r"^Line 3, column \d+: Unexpected"))
    third_line = page.locator(".cm-line").nth(2)
    expect(third_line.locator(".cm-lintRange-error")).to_have_count(1)
    # The message sits right under line 3, before line 4.
    assert shown.evaluate("el => el.previousElementSibling.textContent") == "  return greeting +;"
    expect(page.locator(".cm-gutter-lint .cm-lint-marker-error")).to_have_count(1)
    assert cluster.admin.get(f"{cluster.admin_url}/admin/processor").json() == [] or all(
        p["name"] != "typed" for p in cluster.admin.get(f"{cluster.admin_url}/admin/processor").json()
    )
    screenshot(page, "processor-error")

    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(TS_WITH_ERROR.replace("greeting +;", "greeting + request.method;"))
    expect(shown).to_have_count(0)  # editing clears it
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(rf"/ui/processors/{UUID.pattern}$"))
    processor_id = page.url.rsplit("/", 1)[1]
    saved = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor_id}").json()
    assert (saved["name"], saved["language"], saved["runtime"]) == ("typed", "ts", "wasm")
    assert "greeting + request.method" in saved["code"]
    expect(page.locator(".cm-editor .cm-content")).to_contain_text("greeting + request.method")
    # Highlighting: keywords and strings are styled spans, not plain text.
    assert page.locator(".cm-content span").count() > 5
    screenshot(page, "processor")
    page.goto(f"{cluster.admin_url}/ui/processors")
    expect(page.get_by_role("link", name="typed")).to_be_visible()
    screenshot(page, "processors")


def test_a_replay_links_to_the_run_it_replays(signed_in: Page, cluster: Cluster) -> None:
    processor = cluster.create_processor('function main(request) { return "v1"; }', name="replayed")
    original = cluster.run_processor(processor["id"], prelude=False).headers["fh-conversation-id"]
    answer = cluster.admin.post(
        f"{cluster.admin_url}/conversation/{original}/replay",
        json={"processor_version_id": processor["active_version_id"]},
    )
    assert answer.status_code == 200, answer.text
    replay_id = answer.json()["conversation"]["id"]

    signed_in.goto(f"{cluster.admin_url}/ui/conversations/{replay_id}")
    expect(signed_in.locator("#summary")).to_contain_text(f"version {processor['active_version_id'][:8]}")
    signed_in.locator("#replay-of").click()
    expect(signed_in).to_have_url(f"{cluster.admin_url}/ui/conversations/{original}")
