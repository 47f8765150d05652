"""How tests and benchmarks start Debian's chromium (Playwright never downloads a browser here)
and open the dashboard in it, signed in and live."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Playwright is imported only where a browser is started
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
#: What the dashboard's page shows once its live feed is connected.
LIVE = "#live[data-live='live']"


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless chromium, closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LivePage:
    """The dashboard's page, its browser context, and the script errors it raised so far."""

    page: Page
    context: BrowserContext
    errors: list[str]


@contextlib.contextmanager
def live_page(
    browser: Browser, address: str, width: int, height: int, timeout_ms: float
) -> Iterator[LivePage]:
    """The page at ``address`` (a dashboard's sign-in address) in a context of its own, once
    its live feed is connected; the context is closed when the block ends."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(address)
        page.wait_for_selector(LIVE, timeout=timeout_ms)
        yield LivePage(page, context, errors)
    finally:
        context.close()
