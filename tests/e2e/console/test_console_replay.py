"""Replay in the console, used as a person would: "Replay against…" on a conversation, the side-by-side
comparison, "test this version against the last N runs" on endpoint and processor pages, processor
versions and rollback.

Everything is real: redis-server, a control plane and two data planes as processes (the second
keeps only 16 bytes of every body, FFAAS_MAX_CAPTURED_BODY_BYTES=16, so its runs are "cut"),
Debian's Chromium, and local HTTP servers that processors relay to (one can hold its requests at
a barrier, so a batch is seen in progress). Each new view is photographed at 1280 and 390 px.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RedisServer
from tests.e2e.cluster import UUID, Cluster, TargetServer
from tests.e2e.conftest import running_cluster
from tests.e2e.console.conftest import screenshot, sign_in
from tests.e2e.processes import Plane
from tests.e2e.test_replay_batch import WAIT_S, HoldingServer

CAPTURE_CAP = 16
RELAY = """async function main(fh, request) {
  fh.log("relaying", request.method);
  const answer = await fh.dispatch_request(TARGET + "/hooks", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({relayed: JSON.parse(request.body)}),
  });
  return {code: 201, headers: {"content-type": "application/json"}, body: {target_said: answer.code}};
}
"""
DRAFT_WITH_ERROR = """async function main(fh: any, request: any) {
  const answer = await fh.dispatch_request(TARGET + "/hooks", {method: "POST", body: request.body});
  return {code: 200, body: {target_said: answer.code, draft: true} +;
}
"""
DRAFT = """async function main(fh: any, request: any) {
  fh.log("draft relaying", request.method);
  const answer = await fh.dispatch_request(TARGET + "/hooks", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({relayed: JSON.parse(request.body)}),
  });
  const body = {target_said: answer.code, draft: true};
  return {code: 201, headers: {"content-type": "application/json"}, body};
}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_OUTBOUND_ALLOW": "127.0.0.1", "FFAAS_REPLAY_CONCURRENCY": "2"}
    with running_cluster(
        tmp_path_factory.mktemp("console-replay"), redis_server, settings=settings
    ) as cluster:
        cluster.start_data_plane(settings={"FFAAS_MAX_CAPTURED_BODY_BYTES": str(CAPTURE_CAP)})
        yield cluster


@pytest.fixture
def cutting(cluster: Cluster) -> Plane:
    return cluster.data_planes[1]


@pytest.fixture
def target() -> Iterator[TargetServer]:
    with TargetServer() as server:
        yield server


@pytest.fixture
def signed_in(page: Page, cluster: Cluster) -> Page:
    sign_in(page, cluster)
    return page


def deploy_inactive(cluster: Cluster, endpoint_id: str, wasm: bytes) -> dict[str, Any]:
    response = cluster.admin.post(
        f"{cluster.admin_url}/endpoint/{endpoint_id}/deploy?activate=false", content=bytes(wasm)
    )
    assert response.status_code == 201, response.text
    deploy: dict[str, Any] = response.json()
    return deploy


def stored(cluster: Cluster, conversation_id: str) -> dict[str, Any]:
    response = cluster.admin.get(f"{cluster.admin_url}/conversation/{conversation_id}")
    assert response.status_code == 200, response.text
    conversation: dict[str, Any] = response.json()
    return conversation


def replace_code(page: Page, editor: str, code: str) -> None:
    """Type `code` over everything in the code editor inside `editor` (a CSS selector)."""
    page.locator(f"{editor} .cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(code)


def open_replay(page: Page, cluster: Cluster, conversation_id: str) -> None:
    page.goto(f"{cluster.admin_url}/ui/conversations/{conversation_id}")
    page.locator("#replay > summary").click()


def test_a_run_replayed_against_another_deploy_shows_both_runs_side_by_side(
    signed_in: Page, cluster: Cluster, echo_wasm: bytes, hello_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("replayed endpoint", echo_wasm)
    echo_deploy = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]
    run = cluster.call(cluster.data_planes[0], endpoint_id, "/orders", method="POST", content=b"order 7")
    original_id = run.headers["fh-conversation-id"]
    hello = deploy_inactive(cluster, endpoint_id, hello_wasm)

    page = signed_in
    open_replay(page, cluster, original_id)
    choice = page.get_by_label("Deploy")
    # Every deploy of the history is offered, the one that ran this run chosen first.
    expect(choice.locator("option")).to_have_count(2)
    expect(choice).to_have_value(f"deploy_id:{echo_deploy}")
    expect(page.locator("#replay [data-allow-truncated]")).to_be_hidden()
    expect(page.locator("#replay input[name=outbound]")).to_have_count(0)  # modules make no outbound calls
    choice.select_option(f"deploy_id:{hello['id']}")
    page.get_by_role("button", name="Replay", exact=True).click()

    comparison = page.locator("#replay-result #comparison")
    expect(comparison).to_be_visible()
    replay_id = comparison.locator("#replay-link").get_attribute("href").rsplit("/", 1)[1]
    replay = stored(cluster, replay_id)
    assert (replay["replay_of"], replay["deploy_id"], replay["replay_mode"]) == (
        original_id,
        hello["id"],
        "recorded",
    )
    # What the page says differs is what the API's diff says.
    differs_in = page.locator("#replay [data-status]").inner_text().removeprefix("replayed: differs in ")
    expect(comparison.locator("#comparison-verdict")).to_have_text(f"The replay differs in {differs_in}")
    assert {"headers", "body", "logs"} <= set(differs_in.split(", "))
    expect(comparison.locator("#part-status")).not_to_have_class(re.compile(r"\bdiffers\b"))
    body = comparison.locator("#part-body")
    expect(body).to_have_class(re.compile(r"\bdiffers\b"))
    expect(body.locator('[data-side="original"]')).to_contain_text('"body": "order 7"')
    expect(body.locator('[data-side="replay"]')).to_contain_text("Hello, world!")
    expect(body.locator(".unified .diff-remove").first).to_contain_text("order 7")
    expect(body.locator(".unified .diff-add")).to_contain_text(["Hello, world!"])
    headers = comparison.locator("#part-headers")
    expect(headers.locator('[data-side="original"] tr.mark-changed')).to_contain_text(["application/json"])
    expect(headers.locator('[data-side="replay"] tr.mark-changed')).to_contain_text(["text/plain"])
    expect(comparison.locator("#part-logs [data-side=original] .log-line")).to_have_text(
        ["echo: POST /orders"]
    )
    expect(comparison.locator("#part-logs .unified .diff-remove")).to_contain_text(["-echo: POST /orders"])
    expect(comparison.locator("#original-link")).to_have_attribute("href", f"/ui/conversations/{original_id}")

    comparison.locator("#replay-link").click()
    expect(page).to_have_url(f"{cluster.admin_url}/ui/conversations/{replay_id}")
    expect(page.locator("#summary")).to_contain_text(f"deploy {hello['id'][:8]}")
    expect(page.locator("#summary")).to_contain_text("(recorded outbound)")
    page.locator("#compare-link").click()
    expect(page).to_have_url(f"{cluster.admin_url}/ui/conversations/{replay_id}/compare")
    expect(page.locator("#comparison-verdict")).to_have_text(f"The replay differs in {differs_in}")
    screenshot(page, "replay-compare")
    page.locator("#original-link").click()
    expect(page).to_have_url(f"{cluster.admin_url}/ui/conversations/{original_id}")


def test_a_draft_edited_in_place_is_replayed_with_recorded_then_live_outbound(
    signed_in: Page, cluster: Cluster, target: TargetServer
) -> None:
    define = f"const TARGET = {target.url!r};\n"
    processor = cluster.create_processor(define + RELAY, name="relay to draft")
    run = cluster.run_processor(processor["id"], method="POST", content=b'{"order": 1}')
    assert run.status_code == 201, run.text
    assert len(target.received) == 1

    page = signed_in
    open_replay(page, cluster, run.headers["fh-conversation-id"])
    page.get_by_label("Version").select_option("draft")
    draft = page.locator("#replay [data-draft]")
    expect(draft).to_be_visible()
    # The same code editor as the processor page's, starting from the code that ran.
    expect(draft.locator(".cm-editor .cm-content")).to_contain_text("relaying")
    draft.get_by_label("Language").select_option("ts")
    replace_code(page, "#replay", define + DRAFT_WITH_ERROR)
    page.get_by_role("button", name="Replay", exact=True).click()
    shown = draft.locator(".cm-compile-error")
    expect(shown).to_have_text(re.compile(r"^Line 4, column \d+: "))
    assert shown.evaluate("el => el.previousElementSibling.textContent").endswith("draft: true} +;")
    expect(page.locator("#replay [data-error]")).to_contain_text("Line 4, column")
    expect(page.locator("#replay-result")).to_be_empty()

    replace_code(page, "#replay", define + DRAFT)
    expect(shown).to_have_count(0)
    page.get_by_role("button", name="Replay", exact=True).click()
    comparison = page.locator("#replay-result #comparison")
    expect(comparison.locator("#comparison-verdict")).to_have_text("The replay differs in body, logs")
    expect(comparison.locator("#part-body .changes")).to_have_text("add /draft")
    expect(comparison.locator("#part-logs .unified .diff-add")).to_have_text(["+draft relaying POST"])
    expect(comparison.locator("#part-outbound")).to_contain_text("same")
    assert len(target.received) == 1  # recorded: the outbound call was answered from the record
    replay_id = comparison.locator("#replay-link").get_attribute("href").rsplit("/", 1)[1]
    replay = stored(cluster, replay_id)
    assert replay["processor_version_id"] is None and replay["replay_mode"] == "recorded"
    # The draft was saved nowhere.
    saved = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()
    assert len(saved["version_history"]) == 1 and "draft" not in saved["code"]
    screenshot(page, "replay-draft")

    page.get_by_role("radio", name="live: really sent").check()
    page.get_by_role("button", name="Replay", exact=True).click()
    expect(page.locator("#replay [data-status]")).to_have_text("replayed: differs in body, logs")
    expect(comparison.locator(".side-replay h3")).to_have_text("Replay · outbound live")
    assert len(target.received) == 2  # live: really sent
    assert json.loads(target.received[1].body) == {"relayed": {"order": 1}}


def test_a_run_cut_when_recorded_is_refused_with_the_message_then_allowed(
    signed_in: Page, cluster: Cluster, cutting: Plane, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("cut endpoint", echo_wasm)
    run = cluster.call(cutting, endpoint_id, method="POST", content=b"0123456789" * 10)
    assert run.status_code == 200

    page = signed_in
    open_replay(page, cluster, run.headers["fh-conversation-id"])
    allow = page.get_by_label(re.compile("Replay although a body was cut"))
    expect(allow).to_be_visible()
    expect(allow).not_to_be_checked()
    page.get_by_role("button", name="Replay", exact=True).click()
    error = page.locator("#replay [data-error]")
    expect(error).to_contain_text("was cut when it was recorded (its body of 100 bytes")
    expect(error).to_contain_text("FFAAS_MAX_CAPTURED_BODY_BYTES")
    expect(page.locator("#replay-result")).to_be_empty()

    allow.check()
    page.get_by_role("button", name="Replay", exact=True).click()
    comparison = page.locator("#replay-result #comparison")
    expect(comparison.locator("#part-body .compared-cut")).to_contain_text("A body was cut when recorded")
    replay_id = comparison.locator("#replay-link").get_attribute("href").rsplit("/", 1)[1]
    request = stored(cluster, replay_id)["audit_items"][0]["payload"]
    assert request["body"] == "0123456789012345"  # the body as it was kept
    screenshot(page, "replay-cut")


def test_an_endpoint_deploy_uploaded_without_activating_is_tested_against_the_last_runs_then_activated(
    signed_in: Page, cluster: Cluster, examples: Path, echo_wasm: bytes
) -> None:
    endpoint_id = cluster.new_deployed_endpoint("tested endpoint", echo_wasm)
    echo_deploy = cluster.get_endpoint(endpoint_id).json()["active_deploy_id"]
    originals = [
        cluster.call(
            cluster.data_planes[0], endpoint_id, f"/run/{n}", method="POST", content=f"n={n}".encode()
        ).headers["fh-conversation-id"]
        for n in range(4)
    ]

    page = signed_in
    page.goto(f"{cluster.admin_url}/ui/endpoints/{endpoint_id}")
    page.get_by_label(re.compile("WebAssembly module")).set_input_files(str(examples / "hello.wasm"))
    page.get_by_role("button", name="Upload without activating").click()
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(2)
    endpoint = cluster.get_endpoint(endpoint_id).json()
    hello_deploy = endpoint["deploy_history"][1]["id"]
    assert endpoint["active_deploy_id"] == echo_deploy  # uploaded, not served
    expect(page.locator(f'tr[data-deploy-id="{echo_deploy}"]')).to_have_class("active")
    expect(page.locator(f'tr[data-deploy-id="{hello_deploy}"]')).not_to_have_class("active")

    form = page.locator("form.replay-batch")
    expect(form.get_by_label("Deploy")).to_have_value(f"deploy_id:{hello_deploy}")  # the newest inactive one
    form.get_by_label("Runs (the last N)").fill("3")
    form.get_by_role("button", name="Test against the last 3 runs").click()

    report = page.locator("#batch-report")
    expect(report).to_have_attribute("data-state", "finished")
    expect(page).to_have_url(re.compile(rf"\?batch={UUID.pattern}$"))
    batch_id = report.get_attribute("data-batch-id")
    api = cluster.admin.get(f"{cluster.admin_url}/replay/{batch_id}").json()
    assert api["state"] == "finished" and api["total"] == 3 and api["differ"] == 3
    assert [run["original"] for run in api["runs"]] == originals[1:]  # the last 3, oldest first
    expect(report.locator("[data-count=replayed]")).to_have_text("3 of 3")
    expect(report.locator("[data-count=differ]")).to_have_text("3")
    expect(report.locator("[data-count=errors]")).to_have_text("0")
    expect(report.locator(".differs-in .part")).to_contain_text(["headers: 3", "body: 3", "logs: 3"])
    rows = report.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("POST")
    expect(rows.nth(0)).to_contain_text(f"/{endpoint_id}/run/1")
    expect(rows.nth(0).locator(".result")).to_have_text("differs in headers, body, logs")
    assert rows.evaluate_all("rows => rows.map(row => row.dataset.original)") == originals[1:]
    screenshot(page, "endpoint-batch-report")

    rows.nth(2).get_by_role("link", name="side by side").click()
    expect(page.locator("#comparison-verdict")).to_have_text("The replay differs in headers, body, logs")
    expect(page.locator("#original-link")).to_have_attribute("href", f"/ui/conversations/{originals[3]}")
    page.go_back()

    page.locator("#batch-report").get_by_role("button", name="Activate this deploy").click()
    expect(page.locator("#batch-report .activate")).to_contain_text("this deploy is active")
    expect(page.locator(f'tr[data-deploy-id="{hello_deploy}"]')).to_have_class("active")
    assert cluster.get_endpoint(endpoint_id).json()["active_deploy_id"] == hello_deploy
    served = cluster.call(cluster.data_planes[0], endpoint_id)
    assert served.text.startswith("Hello, world!")
    expect(page.locator(".recent-batches tbody tr")).to_have_count(1)
    page.goto(f"{cluster.admin_url}/ui/replays/{batch_id}")
    expect(page.locator("#batch-report [data-count=replayed]")).to_have_text("3 of 3")
    screenshot(page, "replay-batch")


def test_processor_versions_rollback_and_a_batch_of_the_unsaved_code_with_live_progress(
    signed_in: Page, cluster: Cluster
) -> None:
    with HoldingServer() as held:
        define = f"const TARGET = {held.url!r};\n"
        relay = define + RELAY.replace("/hooks", "/")
        processor = cluster.create_processor(relay, name="versioned relay")
        runs = [
            cluster.run_processor(processor["id"], method="POST", content=f'{{"n": {n}}}') for n in range(3)
        ]
        assert [run.status_code for run in runs] == [201, 201, 201]
        page = signed_in
        page.goto(f"{cluster.admin_url}/ui/processors/{processor['id']}")
        versions = page.locator("#versions tbody tr")
        expect(versions).to_have_count(1)
        # Saving from the editor makes version 2: the history shows it at once, without a reload.
        editor = page.locator("form.processor")
        replace_code(page, "form.processor", relay.replace("answer.code}", "answer.code, v: 2}"))
        editor.get_by_label("Language").select_option("ts")
        editor.get_by_label("Runtime").select_option("wasm")
        page.evaluate("window.__sameDocument = true")
        editor.get_by_role("button", name="Save").click()
        expect(editor.locator("[data-status]")).to_have_text("saved")
        expect(versions).to_have_count(2)
        assert page.evaluate("window.__sameDocument") is True
        second = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()
        v1, v2 = (version["id"] for version in second["version_history"])
        expect(versions.nth(0)).to_have_attribute("data-version-id", v2)
        expect(versions.nth(0)).to_have_class("active")
        expect(versions.nth(0)).to_contain_text(second["version_history"][1]["code_hash"][:12])
        expect(page.locator("form.replay-batch select[name=target] option")).to_have_count(3)
        expect(versions.nth(0)).to_contain_text("TypeScript")
        expect(versions.nth(0)).to_contain_text("wasm")
        expect(versions.nth(1)).to_contain_text("JavaScript")
        expect(versions.nth(1)).to_contain_text("v8")
        screenshot(page, "processor-versions")

        # A rollback without the session's CSRF token is refused, and nothing changes.
        refused = page.evaluate(
            """async ([url, version_id]) => (await fetch(url, {
                method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({version_id}),
            })).status""",
            [f"/admin/processor/{processor['id']}/rollback", v1],
        )
        assert refused == 403
        assert (
            cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()[
                "active_version_id"
            ]
            == v2
        )

        versions.nth(1).get_by_role("link").click()
        expect(page).to_have_url(f"{cluster.admin_url}/ui/processors/{processor['id']}/versions/{v1}")
        expect(page.locator("#version-code")).to_contain_text("target_said: answer.code}")
        expect(page.locator("#version")).to_contain_text("JavaScript")
        screenshot(page, "processor-version")
        page.go_back()
        versions.nth(1).get_by_role("button", name="Roll back to this").click()
        expect(versions.nth(1)).to_have_class("active")
        now = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()
        assert now["active_version_id"] == v1 and now["runtime"] == "v8"
        expect(page.locator(".cm-content")).not_to_contain_text("v: 2")  # the editor shows v1 again

        # The unsaved code in the editor, against the last 3 runs, outbound live: the held server
        # keeps the batch running until released, and the page shows it running meanwhile.
        replace_code(page, "form.processor", relay.replace("code: 201", "code: 202"))
        form = page.locator("form.replay-batch")
        expect(form.get_by_label("Version")).to_have_value("draft")
        versions.nth(0).get_by_role("button", name="Test against recent runs").click()
        expect(form.get_by_label("Version")).to_have_value(f"processor_version_id:{v2}")
        form.get_by_label("Version").select_option("draft")
        form.get_by_label("Runs (the last N)").fill("3")
        form.get_by_label("Outbound requests").select_option("live")
        held.holding.set()
        form.get_by_role("button", name="Test against the last 3 runs").click()
        assert held.entered.wait(WAIT_S)
        report = page.locator("#batch-report")
        expect(report).to_have_attribute("data-state", "running")
        expect(report.locator("[data-progress]")).to_contain_text("0 of 3 runs done")
        held.release.set()
        expect(report).to_have_attribute("data-state", "finished")
        expect(report.locator("[data-count=replayed]")).to_have_text("3 of 3")
        expect(report.locator("[data-count=differ]")).to_have_text("3")
        expect(report.locator(".differs-in .part")).to_have_text(["status: 3"])
        expect(report.locator("h3")).to_contain_text("Test of a draft (JavaScript, v8")
        expect(report.locator(".activate")).to_contain_text("A draft: save it in the editor")
        assert len(held.received) == 6  # 3 runs + 3 live replays
        unsaved = cluster.admin.get(f"{cluster.admin_url}/admin/processor/{processor['id']}").json()
        assert unsaved["active_version_id"] == v1 and "code: 202" not in unsaved["code"]
        screenshot(page, "processor-batch-report")
