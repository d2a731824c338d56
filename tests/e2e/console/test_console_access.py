"""Who may see what: nothing for a visitor who is not signed in; writes need the CSRF token.

And with no admin token configured, every page says that the admin API is open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import running_cluster
from tests.e2e.console.conftest import TIMEOUT_MS, screenshot, sign_in

SECRET_NAME = "secret-endpoint-name"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("console-access"), redis_server) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def open_cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_ADMIN_TOKEN": ""}
    with running_cluster(tmp_path_factory.mktemp("console-open"), redis_server, settings=settings) as cluster:
        yield cluster


def test_a_visitor_who_is_not_signed_in_sees_no_data(page: Page, cluster: Cluster) -> None:
    endpoint = cluster.create_endpoint(SECRET_NAME)
    processor = cluster.create_processor(
        'function main(r) { return "secret-processor-output"; }', name="secret-proc"
    )
    run = cluster.run_processor(processor["id"], prelude=False)
    conversation_id = run.headers["fh-conversation-id"]
    pages = [
        "/ui/",
        "/ui/conversations",
        f"/ui/conversations/{conversation_id}",
        "/ui/endpoints",
        f"/ui/endpoints/{endpoint['id']}",
        "/ui/processors",
        "/ui/processors/new",
        f"/ui/processors/{processor['id']}",
        "/ui/no-such-page",
    ]
    for path in pages:
        page.goto(f"{cluster.admin_url}{path}")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        content = page.content()
        ids = [i for i in (conversation_id, endpoint["id"], processor["id"]) if i not in path]  # not typed in
        for secret in (SECRET_NAME, "secret-proc", "secret-processor-output", *ids):
            assert secret not in content, f"{path} showed {secret!r} to a visitor who is not signed in"

    api = page.context.request
    assert api.get(f"{cluster.admin_url}/ui/conversations/stream").status == 401
    refused = api.post(
        f"{cluster.admin_url}/ui/test-request", data={"target": "processor", "id": processor["id"]}
    )
    assert refused.status == 401
    assert api.get(f"{cluster.admin_url}/endpoint").status == 401
    # After signing in, the page asked for is the one shown.
    page.goto(f"{cluster.admin_url}/ui/endpoints/{endpoint['id']}")
    page.get_by_label("Admin token").fill(cluster.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{cluster.admin_url}/ui/endpoints/{endpoint['id']}")
    expect(page.get_by_role("heading", name=SECRET_NAME)).to_be_visible()


def test_a_write_without_the_csrf_token_is_refused(page: Page, cluster: Cluster) -> None:
    sign_in(page, cluster)
    api = page.context.request  # carries the session cookie, as a forged request would
    names_before = [e["name"] for e in cluster.admin.get(f"{cluster.admin_url}/endpoint").json()]

    forged = api.post(f"{cluster.admin_url}/endpoint", data={"name": "forged"})
    wrong = api.post(
        f"{cluster.admin_url}/endpoint", data={"name": "forged"}, headers={"x-csrf-token": "guess"}
    )
    proxied = api.post(f"{cluster.admin_url}/ui/test-request", data={"target": "endpoint", "id": "x"})

    assert (forged.status, wrong.status, proxied.status) == (403, 403, 403)
    assert "CSRF" in forged.json()["message"]
    assert [e["name"] for e in cluster.admin.get(f"{cluster.admin_url}/endpoint").json()] == names_before
    # Reads with the session work, and a write with the page's token too.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    assert api.get(f"{cluster.admin_url}/endpoint").status == 200
    made = api.post(f"{cluster.admin_url}/endpoint", data={"name": "made"}, headers={"x-csrf-token": token})
    assert made.status == 201


def test_a_tampered_session_cookie_is_not_a_session(browser: Browser, cluster: Cluster) -> None:
    context: BrowserContext = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, cluster)
        cookie = next(c for c in context.cookies() if c["name"] == "ffaas_console")
        value = cookie["value"]
        tampered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
        context.add_cookies([{**cookie, "value": tampered}])  # type: ignore[list-item]
        page.goto(f"{cluster.admin_url}/ui/endpoints")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    finally:
        context.close()


def test_without_a_token_every_page_says_the_admin_api_is_open(page: Page, open_cluster: Cluster) -> None:
    endpoint = open_cluster.create_endpoint("open")
    for path in (
        "/ui/conversations",
        "/ui/endpoints",
        f"/ui/endpoints/{endpoint['id']}",
        "/ui/processors",
        "/ui/login",
    ):
        page.goto(f"{open_cluster.admin_url}{path}")
        expect(page.locator("#open-api")).to_contain_text("The admin API is open")
        expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    screenshot(page, "open-api")
