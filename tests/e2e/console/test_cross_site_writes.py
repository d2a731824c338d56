"""A web page on another origin cannot change an open admin API through the visitor's browser.

A developer runs FFAAS with no admin token (allowed on loopback) and visits a page, served
here by a local HTTP server on another port, that tries the two requests a browser sends
cross-origin without a preflight: a `fetch` in `no-cors` mode with JSON in a `text/plain`
body, and an auto-submitted `text/plain` form whose field name and value add up to JSON.
Real Chromium, real planes. Neither may create anything; the same page of the control
plane's own origin still may.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RedisServer
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import running_cluster

FETCH_PAGE = """<!doctype html><title>loading</title><script>
fetch("{api}/endpoint", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                          body: JSON.stringify({{name: "made-by-fetch"}})}})
  .then(() => {{ document.title = "answered"; }}, (error) => {{ document.title = "failed " + error; }});
</script>"""
FORM_PAGE = """<!doctype html><title>form</title>
<form id="forged" method="POST" action="{api}/endpoint" enctype="text/plain">
<input name='{{"name": "made-by-form", "x": "' value='"}}'></form>
<script>document.getElementById("forged").submit();</script>"""


@pytest.fixture(scope="module")
def open_cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    settings = {"FFAAS_ADMIN_TOKEN": ""}
    with running_cluster(tmp_path_factory.mktemp("cross-site"), redis_server, settings=settings) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def elsewhere(open_cluster: Cluster) -> Iterator[str]:
    """A site of its own (another port: another origin) serving the two forging pages."""
    pages = {
        "/fetch": FETCH_PAGE.format(api=open_cluster.admin_url),
        "/form": FORM_PAGE.format(api=open_cluster.admin_url),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            body = pages.get(self.path, "not here").encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def endpoint_names(cluster: Cluster) -> list[str]:
    return [endpoint["name"] for endpoint in cluster.http.get(f"{cluster.admin_url}/endpoint").json()]


def test_a_page_elsewhere_cannot_create_an_endpoint_with_fetch(
    page: Page, open_cluster: Cluster, elsewhere: str
) -> None:
    page.goto(f"{elsewhere}/fetch")
    expect(page).to_have_title("answered")  # the (opaque) answer came back: the request was handled

    assert "made-by-fetch" not in endpoint_names(open_cluster)


def test_a_page_elsewhere_cannot_create_an_endpoint_with_a_form(
    page: Page, open_cluster: Cluster, elsewhere: str
) -> None:
    page.goto(f"{elsewhere}/form")
    page.wait_for_url(f"{open_cluster.admin_url}/endpoint")  # the browser shows the control plane's answer
    expect(page.locator("body")).to_contain_text("cross-origin write refused")

    assert "made-by-form" not in endpoint_names(open_cluster)


def test_a_page_of_the_control_plane_itself_still_writes(page: Page, open_cluster: Cluster) -> None:
    page.goto(f"{open_cluster.admin_url}/ui/endpoints")
    status = page.evaluate(
        """async () => (await fetch("/endpoint", {
             method: "POST",
             headers: {"Content-Type": "application/json"},
             body: JSON.stringify({name: "made-here"}),
           })).status"""
    )

    assert status == 201
    assert "made-here" in endpoint_names(open_cluster)
