"""How soon the dashboard shows `asyncrpc kill b`, and `asyncrpc start b`, on a running system.

The history part runs this on each `up --detach` system it starts (fresh, and
with settled promises stored), so the two are measured in the same run. The
dashboard is opened as a person does: its event feed (``/api/events``, what
the page listens to) is read on a thread, and, when Debian's chromium is
there, the page itself is open in it. Each round then runs `asyncrpc kill b`
and times from the command's return to the first ``status`` event, and to
the page's row, that shows b.1 killed; then the same for `asyncrpc start b`
showing it running. A change that arrives before the command has returned
(its process still exiting) counts as 0.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from benchmarks.bench import BenchError
from harness.browser import CHROMIUM, CHROMIUM_ARGS
from harness.dashboard_feed import Feed, SignIn, sign_in
from harness.processes import ASYNCRPC

#: The replica killed and started again.
REPLICA = "b.1"
#: Seconds a change may take to show before the round fails (the target is 1).
SHOW_TIMEOUT = 30.0
#: Seconds `asyncrpc start b` may take (the node's start-up, on a busy machine).
COMMAND_TIMEOUT = 120.0


class Page(Protocol):
    """What a round needs of the open page: wait until a selector matches."""

    def wait_for_selector(self, selector: str, *, timeout: float) -> Any: ...


def row(state: str) -> str:
    return f'#replicas tr[data-replica="{REPLICA}"][data-state="{state}"]'


def cli(env: Mapping[str, str], *args: str) -> None:
    done = subprocess.run(
        [*ASYNCRPC, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"asyncrpc {' '.join(args)} exited {done.returncode}: {done.stderr}")


@contextlib.contextmanager
def open_page(dashboard: SignIn) -> Iterator[Page | None]:
    """The dashboard's page in Debian's chromium, signed in and live; None without chromium."""
    if not CHROMIUM.exists():
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(dashboard.address)
            page.wait_for_selector("#live[data-live='live']", timeout=SHOW_TIMEOUT * 1000)
            yield page
        finally:
            browser.close()


def one_change(
    env: Mapping[str, str], feed: Feed, page: Page | None, command: str, state: str
) -> dict[str, float | None]:
    """`asyncrpc COMMAND b`; seconds from its return until the feed and the page show ``state``."""
    began = time.monotonic()
    cli(env, command, "b")
    returned = time.monotonic()
    page_s = None
    if page is not None:
        page.wait_for_selector(row(state), timeout=SHOW_TIMEOUT * 1000)
        page_s = time.monotonic() - returned
    event = feed.first(REPLICA, state, began, SHOW_TIMEOUT)
    return {
        "command_s": returned - began,
        "feed_s": max(0.0, event.at - returned),
        "page_s": page_s,
    }


def measure(env: Mapping[str, str], rounds: int) -> dict[str, Any]:
    """``rounds`` kills and starts of b on the system running in ``env``'s run directory."""
    dashboard = sign_in(env)
    kills: list[dict[str, float | None]] = []
    starts: list[dict[str, float | None]] = []
    with Feed(dashboard) as feed, open_page(dashboard) as page:
        feed.first(REPLICA, "running", 0.0, SHOW_TIMEOUT)
        for _ in range(rounds):
            kills.append(one_change(env, feed, page, "kill", "killed"))
            starts.append(one_change(env, feed, page, "start", "running"))
    return {
        "kill": summary(kills),
        "start": summary(starts),
        "rounds": rounds,
        "page": page is not None,
    }


def summary(changes: list[dict[str, float | None]]) -> dict[str, Any]:
    """Each time's values, median and worst (seconds)."""
    out: dict[str, Any] = {}
    for key in ("feed_s", "page_s", "command_s"):
        values = [value for change in changes if (value := change[key]) is not None]
        out[key] = {
            "all": [round(value, 4) for value in values],
            "median": statistics.median(values) if values else None,
            "worst": max(values) if values else None,
        }
    return out
