"""Fixtures of the console's browser tests: Debian's Chromium driven by Playwright, real planes.

One browser per test module (`browser`); each test gets a fresh context (cookies, storage)
and page from it. Chromium is `/usr/bin/chromium` (installed by `make install`; Playwright
never downloads a browser here). Every page a test visits can be photographed at both widths
the console supports (`screenshot`), into build/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.e2e.cluster import Cluster
from tests.e2e.processes import REPO

CHROMIUM = Path(os.environ.get("FFAAS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "build" / "screenshots"
WIDTHS = {"1280": (1280, 900), "390": (390, 844)}
TIMEOUT_MS = 15_000
ASSETS = REPO / "build" / "console" / "console.js"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make install` (it installs Debian's chromium)")
    if not ASSETS.exists():
        pytest.fail(f"{ASSETS} is missing: run `make install` (it builds the console's scripts)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 1280, "height": 900})
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, cluster: Cluster, token: str | None = None) -> None:
    """Sign in through the form, as a person would."""
    page.goto(f"{cluster.admin_url}/ui/")
    assert page.url.startswith(f"{cluster.admin_url}/ui/login"), page.url
    page.get_by_label("Admin token").fill(token or cluster.admin_token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{cluster.admin_url}/ui/conversations")


def screenshot(page: Page, name: str) -> list[Path]:
    """The current page at 1280 and 390 px wide (whole page), as build/screenshots/<name>-<width>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    taken = []
    original = page.viewport_size
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        path = SCREENSHOTS / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        # Nothing may stick out sideways at this width: the page itself never scrolls horizontally.
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} at {width} px is {overflow} px wider than the window"
    if original is not None:
        page.set_viewport_size(original)
    return taken


def readme_screenshot(page: Page, name: str) -> None:
    """With FFAAS_README_SCREENSHOT=1, the top of the page at 1024x1000 as docs/<name> (kept small)."""
    if os.environ.get("FFAAS_README_SCREENSHOT") != "1":
        return
    original = page.viewport_size
    page.set_viewport_size({"width": 1024, "height": 1000})
    target = REPO / "docs" / name
    target.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(target))
    if original is not None:
        page.set_viewport_size(original)
