"""The dashboard's promise browser and detail on resonate-pg, in a real browser.

One `asyncrpc up --server postgres --detach` for the module: the dashboard reads
the promises from the database (resonate-pg answers ``promise.search`` with 501,
so the reader reads the promises table) and the tasks through ``resonate_rpc``.
Skipped without ASYNCRPC_RESONATE_SQL (resonate.sql is not part of the project)
or without /usr/bin/chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from asyncrpc.postgres.schema import RESONATE_SQL_ENV
from harness.isolation import free_port, isolated_env
from harness.launched import Launched
from harness.postgres import copy_data
from harness.processes import ASYNCRPC
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

#: Milliseconds for a page to show what a slow, shared machine is still doing.
SLOW = 60_000

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium`", allow_module_level=True)


@dataclass
class PgSystem:
    env: dict[str, str]
    gateway_url: str
    dashboard_url: str

    def sign_in_url(self) -> str:
        ui = subprocess.run(
            [*ASYNCRPC, "ui", "--no-open"], env=self.env, capture_output=True, text=True
        )
        assert ui.returncode == 0, ui.stderr
        return ui.stdout.strip().removeprefix("dashboard: ")


@pytest.fixture(scope="module")
def system(resonate_sql: Path, postgres_data: Path) -> Iterator[PgSystem]:
    schema = str(resonate_sql)
    # Not under pytest's private temporary root: Postgres, run as another user when the
    # tests run as root, must reach its data directory.
    base = Path(tempfile.mkdtemp(prefix="asyncrpc-pg-dashboard-"))
    copy_data(postgres_data, base / "run" / "postgres")
    env = isolated_env(base / "run", **{RESONATE_SQL_ENV: schema})
    launched = Launched(base / "run", env)
    ports = {name: free_port() for name in ("server", "gateway", "dashboard")}
    try:
        up = subprocess.run(
            [
                *(*ASYNCRPC, "up", "--server", "postgres", "--detach", "--ready-timeout", "120"),
                *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        launched.remember()
        assert up.returncode == 0, up.stdout + up.stderr
        yield PgSystem(
            env,
            f"http://127.0.0.1:{ports['gateway']}",
            f"http://127.0.0.1:{ports['dashboard']}/",
        )
    finally:
        launched.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser: Browser, system: PgSystem) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(system.sign_in_url())
    page.wait_for_selector("#live[data-live='live']", timeout=SLOW)
    yield page
    context.close()
    assert errors == [], errors


def test_search_and_detail_on_resonate_pg(page: Page, system: PgSystem) -> None:
    for flow, route in (("await-chain", "/await-chain"), ("fan-out", "/fan-out-workflow")):
        answer = httpx.post(f"{system.gateway_url}{route}?id=pg-{flow}-1", timeout=120)
        assert answer.json() == {"message": 3}, answer.text
    search = page.get_by_label("Search promises")
    search.fill("pg-await-chain-*")
    search.press("Enter")
    expect(page.locator("#promise-note")).to_have_text("1 to 3 of 3, newest first")  # foo, bar, baz
    page.select_option("#promise-role", "root")
    expect(page.locator("#promise-note")).to_have_text("1 to 1 of 1, newest first")
    page.select_option("#promise-role", "")
    page.get_by_role("button", name="Show the detail of pg-await-chain-1:1", exact=True).click()
    detail = page.locator("#detail-body")
    expect(detail.locator('[data-field="function"]')).to_have_text("bar")
    expect(detail.locator('[data-field="value"]')).to_have_text("2")
    expect(detail.locator('[data-field="group"]')).to_have_text("service-b")
    expect(detail.locator('[data-field="task"]')).to_contain_text("fulfilled")


def test_the_detached_chains_result_and_the_demos_victims(page: Page, system: PgSystem) -> None:
    answer = httpx.post(f"{system.gateway_url}/detached-chain?id=pg-detached-1", timeout=120)
    assert answer.status_code == 200, answer.text
    row = page.locator('#invocations tr[data-invocation="pg-detached-1"][data-state="resolved"]')
    expect(row.locator(".result")).to_have_text("3", timeout=SLOW)
    victims = page.eval_on_selector_all(
        "#demo-victim option", "options => options.map(o => o.value)"
    )
    assert "postgres" in victims and "server" not in victims
