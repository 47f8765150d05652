"""The dashboard's promise browser and detail on resonate-pg, in a real browser.

One `asyncrpc up --server postgres --detach` for the module: the dashboard reads
the promises and the schedules from the database (resonate-pg answers
``promise.search`` and ``schedule.search`` with 501, so the reader reads the
promises and schedules tables) and the tasks through ``resonate_rpc``.
Skipped without ASYNCRPC_RESONATE_SQL (resonate.sql is not part of the project)
or without /usr/bin/chromium.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from asyncrpc.postgres.schema import RESONATE_SQL_ENV
from harness.browser import CHROMIUM, LIVE, live_page
from harness.launched import Launched, launched
from tests.support.dashboard import sign_in_url

#: Milliseconds for a page to show what a slow, shared machine is still doing.
SLOW = 60_000

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium`", allow_module_level=True)


@pytest.fixture(scope="module")
def system(resonate_sql: Path, postgres_data: Path) -> Iterator[Launched]:
    schema = {RESONATE_SQL_ENV: str(resonate_sql)}
    with launched("asyncrpc-pg-dashboard-", postgres_data=postgres_data, env=schema) as run:
        run.up("--server", "postgres")
        yield run


@pytest.fixture(scope="module")
def page(browser: Browser, system: Launched) -> Iterator[Page]:
    address = sign_in_url(system)
    with live_page(browser, address, width=1280, height=900, timeout_ms=SLOW) as live:
        yield live.page
    assert live.errors == [], live.errors


def test_search_and_detail_on_resonate_pg(page: Page, system: Launched) -> None:
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


def test_the_detached_chains_result_and_the_demos_victims(page: Page, system: Launched) -> None:
    answer = httpx.post(f"{system.gateway_url}/detached-chain?id=pg-detached-1", timeout=120)
    assert answer.status_code == 200, answer.text
    row = page.locator('#invocations tr[data-invocation="pg-detached-1"][data-state="resolved"]')
    expect(row.locator(".result")).to_have_text("3", timeout=SLOW)
    victims = page.eval_on_selector_all(
        "#demo-victim option", "options => options.map(o => o.value)"
    )
    assert "postgres" in victims and "server" not in victims


def test_the_overview_lists_a_schedule_from_the_schedules_table(
    page: Page, system: Launched
) -> None:
    import psycopg

    from asyncrpc.protocol.answers import envelope
    from asyncrpc.runtime.keepalive import postgres_conninfo

    page.reload()
    page.wait_for_selector(LIVE, timeout=SLOW)
    expect(page.locator("#no-schedules")).to_be_visible(timeout=SLOW)
    status = json.loads(system.cli("status", "--json").stdout)
    request = envelope(
        "schedule.create",
        None,
        id="pg-nightly",
        cron="30 2 * * *",
        promiseId="{{.id}}.{{.timestamp}}",
        promiseTimeout=60_000,
        promiseTags={"resonate:target": "poll://any@service-a"},
    )
    with psycopg.connect(postgres_conninfo(status["server_url"]), autocommit=True) as db:
        row = db.execute("SELECT resonate.resonate_rpc(%s::jsonb)", (json.dumps(request),))
        answer = row.fetchone()
    assert answer is not None and answer[0]["head"]["status"] == 200, answer
    row_shown = page.locator('#overview-schedules tr[data-schedule="pg-nightly"]')
    expect(row_shown.locator('[data-field="cron"]')).to_have_text("30 2 * * *", timeout=SLOW)
    expect(row_shown.locator('[data-field="last_run"]')).to_have_text("never")
    expect(row_shown.locator('[data-field="creates"]')).to_contain_text("service-a")
    listed = system.cli("schedules", "--json")
    assert listed.returncode == 0, listed.stderr
    [schedule] = json.loads(listed.stdout)["schedules"]
    assert (schedule["id"], schedule["cron"], schedule["group"]) == (
        "pg-nightly",
        "30 2 * * *",
        "service-a",
    )


def test_the_timeline_says_only_what_resonate_pg_records(page: Page, system: Launched) -> None:
    """resonate-pg keeps a task's version, not why it was taken again: the label says so."""
    answer = httpx.post(f"{system.gateway_url}/await-chain?id=pg-timeline-1", timeout=120)
    assert answer.json() == {"message": 3}, answer.text
    page.reload()
    page.wait_for_selector(LIVE, timeout=SLOW)
    page.click('button[aria-label="Show the call graph of pg-timeline-1"]')
    page.get_by_role("button", name="Timeline", exact=True).click()
    foo = page.locator('svg.timeline g.row[data-step="pg-timeline-1"]')
    expect(foo).to_have_attribute("data-known", "none")
    label = foo.locator("text.bar-label")
    expect(label).to_contain_text("acquired 2 times")
    assert "resumed" not in (label.text_content() or "")
    assert "look alike" in (foo.locator("title").first.text_content() or "")
    page.get_by_role("button", name="Graph", exact=True).click()
