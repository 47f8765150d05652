"""The dashboard in a real browser, over one `asyncrpc up` for the whole module.

Playwright drives Debian's chromium (/usr/bin/chromium; .ci/run installs it,
Playwright never downloads a browser here). Node c runs with a crash-demo
delay (its step sleeps durably), so the await chain's graph has a durable
sleep and is seen pending before it settles. The crash demo started from the
page runs a system of its own, in RUN_DIR/demo. The browser signs in as a person
does, with the address `asyncrpc ui` prints; scripts send the token after its
``#token=`` as a bearer token. Set ASYNCRPC_UPDATE_SCREENSHOT=1 to write the
screenshots into docs/images/dashboard.png and docs/images/promises.png.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import psutil
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Route, expect

from asyncrpc.dashboard.app import make_app
from asyncrpc.protocol.call_graph import CallKind, CallNode
from asyncrpc.protocol.errors import UnknownInvocation
from asyncrpc.protocol.states import PromiseState
from asyncrpc.readers.server_reader import ServerReader
from asyncrpc.supervise.control_client import connect
from asyncrpc.supervise.rundir import RunDir
from harness.browser import CHROMIUM, LIVE, live_page
from harness.isolation import free_port
from harness.launched import Launched, launched
from harness.waiting import wait_until
from tests.support import ROOT
from tests.support.dashboard import dashboard, sign_in_url

SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"
PROMISES_SCREENSHOT = ROOT / "docs" / "images" / "promises.png"
#: Milliseconds a change may take to show here; how soon it shows is measured by the history
#: benchmark's kill_live part, not by a test on a shared machine.
SHOWN = 15_000
#: Milliseconds for a replica to start, or a flow to finish, on a busy shared machine.
SLOW = 60_000

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs it with apt-get")
    pytest.skip(
        f"{CHROMIUM} is missing: `apt-get install -y chromium` to run the browser tests",
        allow_module_level=True,
    )


@dataclass
class System:
    launched: Launched

    @property
    def run_dir(self) -> Path:
        return self.launched.run_dir

    @property
    def env(self) -> Mapping[str, str]:
        return self.launched.env

    @property
    def gateway_url(self) -> str:
        return self.launched.gateway_url

    @property
    def dashboard_url(self) -> str:
        return self.launched.dashboard_url

    @property
    def server_url(self) -> str:
        return self.launched.server_url

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.launched.cli(*args, timeout=120, env=env)

    def sign_in_url(self) -> str:
        return sign_in_url(self.launched)

    def bearer(self) -> dict[str, str]:
        """What a script sends: the token of the address `status --json` names."""
        status = json.loads(self.cli("status", "--json").stdout)
        token = parse_qs(urlparse(status["dashboard"]).fragment)["token"][0]
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with launched(base=tmp_path_factory.mktemp("dashboard"), env={"COLUMNS": "200"}) as run:
        up = run.up("--delay", "c=1.5")
        assert f"dashboard: {run.dashboard_url}" in up.stdout
        yield System(run)


@pytest.fixture(scope="module")
def page(browser: Browser, system: System) -> Iterator[Page]:
    sign_in = system.sign_in_url()
    with live_page(browser, sign_in, width=1400, height=1000, timeout_ms=SLOW) as live:
        # Signed in: the secret has left the address, and the cookie is a session, not the
        # secret.
        assert live.page.url == system.dashboard_url
        secret = parse_qs(urlparse(sign_in).fragment)["token"][0]
        [cookie] = live.context.cookies()
        assert secret not in cookie["value"] and len(cookie["value"]) >= 40
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")
        yield live.page
    assert live.errors == [], live.errors


def replica(name: str, state: str) -> str:
    return f'#replicas tr[data-replica="{name}"][data-state="{state}"]'


# -- without a browser ------------------------------------------------------------


def test_status_and_ui_name_the_dashboard_with_its_sign_in(system: System) -> None:
    status = system.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    sign_in = json.loads(status.stdout)["dashboard"]
    assert sign_in.startswith(f"{system.dashboard_url}#token=")
    assert system.sign_in_url() == sign_in
    secret = parse_qs(urlparse(sign_in).fragment)["token"][0]
    # The secret is in the private state file, and on no command line, in no log.
    assert secret in (system.run_dir / "launcher.json").read_text()
    assert (system.run_dir / "launcher.json").stat().st_mode & 0o777 == 0o600
    for log in (system.run_dir / "logs").glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log.name
    for process in psutil.process_iter(["cmdline"]):
        assert not any(secret in part for part in process.info["cmdline"] or []), process
    anyone = httpx.get(f"{system.dashboard_url}api/status", timeout=30)
    assert anyone.status_code == 401
    kill = httpx.post(f"{system.dashboard_url}api/replicas/c.1/kill", timeout=30)
    assert kill.status_code == 401
    assert httpx.get(f"{system.dashboard_url}api/status", headers=system.bearer()).is_success


def test_ui_opens_a_private_page_that_signs_the_browser_in(
    system: System, browser: Browser, tmp_path: Path
) -> None:
    """The browser is started with a file's path, not the secret (its command line is public)."""
    recorder = tmp_path / "browser"
    recorder.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "argv"}\n')
    recorder.chmod(0o700)
    ui = system.cli("ui", BROWSER=f"{recorder} %s")
    assert ui.returncode == 0, ui.stderr
    [opened] = (tmp_path / "argv").read_text().splitlines()
    sign_in = ui.stdout.strip().removeprefix("dashboard: ")
    secret = parse_qs(urlparse(sign_in).fragment)["token"][0]
    assert opened.startswith("file://") and secret not in opened
    page_file = Path(urlparse(opened).path)
    assert page_file.parent == system.run_dir and page_file.stat().st_mode & 0o777 == 0o600
    context = browser.new_context()
    page = context.new_page()
    page.goto(opened)
    page.wait_for_selector(LIVE, timeout=SLOW)
    assert page.url == system.dashboard_url
    context.close()


def test_the_feed_shows_a_kill_from_the_cli_within_a_second(system: System) -> None:
    control = connect(RunDir(system.run_dir))
    url = f"{system.dashboard_url}api/events"
    with httpx.stream("GET", url, headers=system.bearer(), timeout=30) as events:
        lines = events.iter_lines()

        def next_states() -> dict[str, str]:
            """Each replica's state, from the feed's next `status` event."""
            for line in lines:
                if line == "event: status":
                    status = json.loads(next(lines).removeprefix("data: "))
                    return {node["name"]: node["state"] for node in status["nodes"]}
            raise AssertionError("the feed ended")

        assert next_states()["e.1"] == "running"
        control.kill("e", "KILL")
        killed_at = time.monotonic()
        while next_states()["e.1"] != "killed":
            pass
        assert time.monotonic() - killed_at < 1.0
    control.start("e")


# -- in the browser ----------------------------------------------------------------


def test_the_page_lists_every_replica_live(page: Page) -> None:
    page.wait_for_selector(replica("b.1", "running"), timeout=SLOW)
    names = page.eval_on_selector_all(
        "#replicas tbody tr", "rows => rows.map(row => row.dataset.replica)"
    )
    assert names == ["server", "gateway", *(f"{node}.1" for node in "abcdefghi")]
    assert page.text_content("#live") == "live"


def test_call_a_flow_and_watch_its_graph_settle(page: Page) -> None:
    page.fill('input[aria-label="Invocation id for await-chain (optional)"]', "page-await-1")
    page.click('button[aria-label="Call await-chain"]')
    # c's step sleeps durably for 1.5 s: the graph is drawn while the flow runs ...
    page.wait_for_selector('svg.callgraph g[data-function="foo"][data-state="pending"]')
    # ... and updates until every step has settled.
    page.wait_for_selector(
        '#invocations tr[data-invocation="page-await-1"][data-state="resolved"]', timeout=SLOW
    )
    assert page.text_content('#invocations tr[data-invocation="page-await-1"] .result') == "3"
    page.wait_for_selector('svg.callgraph g[data-function="foo"][data-state="resolved"]')
    steps = page.eval_on_selector_all(
        "svg.callgraph g.step",
        "steps => steps.map(s => [s.dataset.function, s.dataset.kind, s.dataset.state])",
    )
    assert steps == [
        ["foo", "call", "resolved"],
        ["bar", "call", "resolved"],
        ["baz", "call", "resolved"],
        ["", "sleep", "resolved"],
    ]
    lanes = page.eval_on_selector_all(
        "svg.callgraph .lane-label", "labels => labels.map(label => label.textContent)"
    )
    assert lanes == ["service-a", "service-b", "service-c"]
    assert page.locator("svg.callgraph path.arrow").count() == 3


def test_a_kill_from_the_cli_shows_on_the_page_within_a_second(page: Page, system: System) -> None:
    control = connect(RunDir(system.run_dir))
    page.wait_for_selector(replica("d.1", "running"))
    control.kill("d", "KILL")
    page.wait_for_selector(replica("d.1", "killed"), timeout=SHOWN)
    control.start("d")
    page.wait_for_selector(replica("d.1", "running"), timeout=SLOW)


def test_kill_b_from_the_page_and_start_it_again(page: Page) -> None:
    page.click('button[aria-label="Kill b.1"]')
    page.wait_for_selector(replica("b.1", "killed"), timeout=SLOW)
    assert page.is_disabled('button[aria-label="Kill b.1"]')
    page.click('button[aria-label="Start b.1"]')
    page.wait_for_selector(replica("b.1", "running"), timeout=SLOW)
    restarts = page.text_content(f'{replica("b.1", "running")} [data-field="restarts"]')
    assert restarts == "1"


def test_the_keyboard_calls_a_flow(page: Page) -> None:
    page.focus('input[aria-label="Invocation id for fan-out (optional)"]')
    page.keyboard.type("keyboard-fan-out")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Call fan-out"
    page.keyboard.press("Enter")
    page.wait_for_selector(
        '#invocations tr[data-invocation="keyboard-fan-out"][data-state="resolved"]', timeout=SLOW
    )
    page.wait_for_selector('svg.callgraph g[data-function="dop"][data-state="resolved"]')


def test_an_invocation_from_curl_is_listed_too(page: Page, system: System) -> None:
    answer = httpx.post(f"{system.gateway_url}/fan-out-workflow?id=from-curl", timeout=60)
    assert answer.json() == {"message": 3}
    row = '#invocations tr[data-invocation="from-curl"][data-state="resolved"]'
    page.wait_for_selector(row, timeout=SHOWN)
    assert page.text_content(f"{row} .result") == "3"


#: Records each state the demo's table shows for b.1 (state chip, restarts), as it is drawn:
#: a state the page shows for half a second is still seen.
RECORD_B1 = """() => {
  window.b1Shown = [];
  const table = document.querySelector('#demo-replicas');
  new MutationObserver(() => {
    const row = [...table.tBodies[0].rows].find((r) => r.cells[0].textContent === 'b.1');
    if (!row || table.hidden) return;
    const shown = `${row.cells[2].textContent} ${row.cells[3].textContent}`;
    if (window.b1Shown.at(-1) !== shown) window.b1Shown.push(shown);
  }).observe(table, { childList: true, subtree: true, attributes: true });
}"""


def test_the_crash_demo_from_the_page(page: Page, system: System) -> None:
    """Run the crash demo as a person would: narrated live, b killed and back, the flow gives 3."""
    demo = page.get_by_role("region", name="Crash demo")
    run = demo.get_by_role("button", name="Run the crash demo")
    stop = demo.get_by_role("button", name="Stop")
    output = demo.get_by_label("crash demo output")
    processes = demo.get_by_role("table", name="the crash demo's processes")

    demo.get_by_label("flow", exact=True).select_option("await-chain")
    expect(demo.get_by_label("victim", exact=True)).to_have_value("b")
    # A short durable sleep on b: the window in which b is dead.
    demo.get_by_label("delay (s)", exact=True).fill("2")
    page.evaluate(RECORD_B1)
    demo_processes = Launched(system.run_dir / "demo", system.env)
    try:
        run.click()
        expect(demo.get_by_role("heading", name="Crash demo running")).to_be_visible(timeout=SLOW)
        expect(run).to_be_disabled()
        expect(stop).to_be_enabled()
        # The narration arrives while the demo runs, not all at its end.
        expect(output).to_contain_text("1. Starting what await-chain needs", timeout=SLOW)
        assert "Recovered" not in (output.text_content() or "")
        expect(processes.get_by_role("cell", name="b.1", exact=True)).to_be_visible(timeout=SLOW)
        demo_processes.remember()
        expect(output).to_contain_text("kill -9 b", timeout=SLOW)
        expect(output).to_contain_text("Starting a replacement b", timeout=SLOW)
        demo_processes.remember()
        expect(output).to_contain_text("Completed: result 3", timeout=SLOW)
        expect(output).to_contain_text(
            "Recovered: await-chain returned 3 after b was killed mid-flow", timeout=SLOW
        )
        expect(demo.get_by_role("heading", name="Crash demo recovered")).to_be_visible()
        expect(run).to_be_enabled()
        expect(stop).to_be_disabled()
        expect(processes).to_be_hidden()
        assert "Stopped everything the demo started" in (output.text_content() or "")
        # b.1 ran, was shown killed, then a replacement (restarts 1) came; the replacement
        # may run for only a moment before the demo stops everything, so it may be seen
        # first as `starting 1` or `stopped 1`.
        shown = page.evaluate("window.b1Shown")
        back = next((i for i, seen in enumerate(shown) if seen.endswith(" 1")), None)
        assert back is not None and "killed 0" in shown[:back], shown
        assert "running 0" in shown[: shown.index("killed 0")], shown
    finally:
        httpx.post(f"{system.dashboard_url}api/demo/stop", headers=system.bearer(), timeout=120)
        demo_processes.stop()


def test_detached_steps_a_log_tail_and_the_screenshot(page: Page, tmp_path: Path) -> None:
    page.fill('input[aria-label="Invocation id for detached-chain (optional)"]', "page-detached")
    page.click('button[aria-label="Call detached-chain"]')
    page.wait_for_selector(
        'svg.callgraph g[data-function="cog"][data-kind="detached"][data-state="resolved"]',
        timeout=SLOW,
    )
    assert page.locator("svg.callgraph path.arrow.detached").count() == 2
    page.click('button[aria-label="Show the log of b.1"]')
    page.wait_for_function(
        "document.querySelector('#log').textContent.includes('asyncrpc launcher: starting b.1')"
    )
    page.click('button[aria-label="Show the call graph of page-await-1"]')
    page.wait_for_selector('svg.callgraph g[data-kind="sleep"]')
    page.wait_for_selector('#invocations tr[data-invocation="page-detached"]')
    page.evaluate("document.querySelector('#toast').classList.remove('shown')")
    page.wait_for_function("getComputedStyle(document.querySelector('#toast')).opacity === '0'")
    target = SCREENSHOT if os.environ.get("ASYNCRPC_UPDATE_SCREENSHOT") else tmp_path / "shot.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 20_000


# -- the promise browser, the detail, the views, the overview ------------------------


def browse(page: Page, system: System, query: str = "") -> None:
    """Open the page afresh at ``?query`` (the session cookie stays)."""
    page.goto(f"{system.dashboard_url}{query}")
    page.wait_for_selector(LIVE, timeout=SLOW)


def listed(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#promise-list tbody tr", "rows => rows.map(row => row.dataset.promise)"
    )


def test_search_filter_page_and_share_the_query(page: Page, system: System) -> None:
    for n in range(1, 8):  # 7 fan-outs: 21 promises, past the first page of 20
        answer = httpx.post(f"{system.gateway_url}/fan-out-workflow?id=browse-{n}", timeout=60)
        assert answer.json() == {"message": 3}
    browse(page, system)
    search = page.get_by_label("Search promises")
    search.fill("browse-*")
    search.press("Enter")
    expect(page.locator("#promise-note")).to_have_text("1 to 20 of 21, newest first")
    shown = listed(page)
    assert len(shown) == 20 and shown[0].startswith("browse-7")
    assert all(promise.startswith("browse-") for promise in shown)
    assert "?q=browse-*" in page.url.replace("%2A", "*")
    page.click("#promise-older")
    expect(page.locator("#promise-note")).to_have_text("21 to 21 of 21, newest first")
    assert listed(page) == ["browse-1"]  # the oldest: the first invocation's root
    expect(page.locator("#promise-older")).to_be_disabled()
    page.click("#promise-newer")
    expect(page.locator("#promise-note")).to_have_text("1 to 20 of 21, newest first")
    page.select_option("#promise-role", "root")
    expect(page.locator("#promise-note")).to_have_text("1 to 7 of 7, newest first")
    assert listed(page) == [f"browse-{n}" for n in range(7, 0, -1)]
    page.select_option("#promise-role", "rpc")
    expect(page.locator("#promise-note")).to_have_text("1 to 14 of 14, newest first")
    page.select_option("#promise-state", "pending")
    expect(page.locator("#promise-note")).to_have_text("No promise matches.")
    # The address keeps the query: reloaded, the page shows the same view.
    query = parse_qs(urlparse(page.url).query)
    assert query == {"q": ["browse-*"], "state": ["pending"], "role": ["rpc"]}
    browse(page, system, "?q=browse-*&state=resolved&role=root")
    expect(page.get_by_label("Search promises")).to_have_value("browse-*")
    expect(page.locator("#promise-role")).to_have_value("root")
    expect(page.locator("#promise-note")).to_have_text("1 to 7 of 7, newest first")
    assert {row for row in listed(page)} == {f"browse-{n}" for n in range(1, 8)}


def test_a_step_opens_its_detail_with_a_deep_link(page: Page, system: System) -> None:
    httpx.post(f"{system.gateway_url}/await-chain?id=detail-1", timeout=60).raise_for_status()
    browse(page, system)
    page.click('button[aria-label="Show the call graph of detail-1"]')
    detail = page.locator("#detail-body")
    expect(detail.locator('[data-field="function"]')).to_have_text("foo")
    bar = page.locator('svg.callgraph g[data-function="bar"]')
    bar.focus()
    page.keyboard.press("Enter")
    expect(detail.locator('[data-field="function"]')).to_have_text("bar")
    expect(detail.locator('[data-field="id"]')).to_have_text("detail-1:1")
    expect(detail.locator('[data-field="group"]')).to_have_text("service-b")
    expect(detail.locator('[data-field="state"]')).to_have_text("resolved")
    expect(detail.locator('[data-field="value"]')).to_have_text("2")
    param = json.loads(detail.locator('[data-field="param"]').text_content() or "")
    assert param["func"] == "bar" and param["args"] == []
    assert "\n" in (detail.locator('[data-field="param"]').text_content() or "")  # pretty
    assert "resonate:target" in (detail.text_content() or "")
    assert urlparse(page.url).fragment == "/promises/detail-1%3A1"
    # The address opens the same detail in a new page.
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator('#detail-body [data-field="function"]')).to_have_text("bar")
    other.close()
    # A parent link moves to the caller.
    detail.get_by_role("button", name="Show the detail of detail-1", exact=True).first.click()
    expect(detail.locator('[data-field="id"]')).to_have_text("detail-1")


def test_a_pending_step_says_why_it_waits(page: Page, system: System) -> None:
    control = connect(RunDir(system.run_dir))
    control.kill("b", "KILL")
    try:
        answer = httpx.post(f"{system.gateway_url}/await-chain?id=stuck-1&wait=0", timeout=60)
        assert answer.status_code == 202
        browse(page, system, "#/promises/stuck-1:1")
        wait = page.locator("#detail-body .wait")
        expect(wait).to_contain_text("no running replica in service-b", timeout=SLOW)
        assert wait.get_attribute("data-wait") == "no-replica"
        # The invocation awaits that step; its list row and graph box read one duration.
        page.click('button[aria-label="Show the call graph of stuck-1"]')
        expect(wait).to_contain_text("awaits stuck-1:1")
        page.wait_for_selector('svg.callgraph g[data-step="stuck-1"] text.sub')
        shown = page.evaluate(
            """() => [
              document.querySelector('#invocations tr[data-invocation="stuck-1"] .duration')
                .textContent,
              document.querySelector('svg.callgraph g[data-step="stuck-1"] text.sub').textContent,
            ]"""
        )
        assert shown[1] == f"pending… {shown[0]}", shown
    finally:
        control.start("b")
    expect(page.locator('#detail-body [data-field="state"]')).to_have_text("resolved", timeout=SLOW)


def test_the_tree_folds_and_the_timeline_draws_the_steps(page: Page, system: System) -> None:
    httpx.post(f"{system.gateway_url}/await-chain?id=views-1", timeout=60).raise_for_status()
    browse(page, system)
    page.click('button[aria-label="Show the call graph of views-1"]')
    page.wait_for_selector('svg.callgraph g[data-kind="sleep"]')
    page.get_by_role("button", name="Tree", exact=True).click()
    tree = page.locator("ul.tree")
    expect(tree.locator("li")).to_have_count(4)
    fold = page.get_by_role("button", name="Collapse views-1:1", exact=True)
    fold.focus()
    page.keyboard.press("Enter")
    expect(tree.locator("li")).to_have_count(2)
    expect(page.get_by_role("button", name="Expand views-1:1")).to_be_focused()
    page.get_by_role("button", name="Graph", exact=True).click()
    expect(page.locator("svg.callgraph g.step")).to_have_count(2)
    expect(page.locator('svg.callgraph g[data-function="bar"]')).to_contain_text("+2 folded")
    page.get_by_role("button", name="Tree", exact=True).click()
    page.get_by_role("button", name="Expand views-1:1", exact=True).click()
    expect(tree.locator("li")).to_have_count(4)
    page.get_by_role("button", name="Timeline", exact=True).click()
    rows = page.locator("svg.timeline g.row")
    expect(rows).to_have_count(4)
    bars = page.eval_on_selector_all(
        "svg.timeline g.row",
        """rows => rows.map(row => {
          const bar = row.querySelector('rect.bar');
          return [row.dataset.kind, row.dataset.state, Number(bar.getAttribute('x')),
                  Number(bar.getAttribute('x')) + Number(bar.getAttribute('width'))];
        })""",
    )
    assert [bar[:2] for bar in bars] == [
        ["call", "resolved"],
        ["call", "resolved"],
        ["call", "resolved"],
        ["sleep", "resolved"],
    ]
    starts, ends = [bar[2] for bar in bars], [bar[3] for bar in bars]
    assert starts == sorted(starts)  # each step starts after its caller
    assert ends[3] <= ends[2] <= ends[1] <= ends[0] + 0.5  # and ends before it
    sleep_width = ends[3] - starts[3]
    assert sleep_width > 0.3 * (ends[0] - starts[0])  # c's 1.5 s sleep is most of the flow
    # Each step's task was taken twice: a resume after awaiting (not a retry); no sleep has one.
    label = rows.nth(0).locator("text.bar-label").text_content() or ""
    assert label.endswith(" · resumed once") and "retr" not in label, label
    assert rows.nth(0).get_attribute("data-resumes") == "1"
    rows.nth(3).focus()
    page.keyboard.press("Enter")
    expect(page.locator('#detail-body [data-field="function"]')).to_have_text("durable sleep")
    page.get_by_role("button", name="Graph", exact=True).click()


def test_the_overview_counts_and_lists_the_errors(page: Page, system: System) -> None:
    def send(kind: str, **data: object) -> None:
        body = {"kind": kind, "head": {"corrId": "t", "version": ""}, "data": data}
        httpx.post(f"{system.server_url}/", json=body, timeout=30).raise_for_status()

    message = base64.b64encode(json.dumps({"message": "the ledger is closed"}).encode())
    send("promise.create", id="broken-1", timeoutAt=2**42, tags={"resonate:origin": "broken-1"})
    send("promise.settle", id="broken-1", state="rejected", value={"data": message.decode()})
    browse(page, system)
    error = page.locator('#overview-errors li[data-promise="broken-1"]')
    expect(error).to_contain_text("the ledger is closed", timeout=SLOW)
    rejected = page.locator('#overview-counts [data-count="rejected"] strong')
    assert int(rejected.text_content() or "0") >= 1
    resolved = page.locator('#overview-counts [data-count="resolved"] strong')
    assert int(resolved.text_content() or "0") > 10
    assert page.locator("svg.rate rect.rate-bar").count() >= 1
    label = page.locator("svg.rate").get_attribute("aria-label") or ""
    assert label.startswith("Invocations per second over the last 5 minutes")
    error.get_by_role("button").click()
    expect(page.locator('#detail-body [data-field="error"]')).to_have_text("the ledger is closed")


def test_the_overview_lists_the_schedules(page: Page, system: System) -> None:
    browse(page, system)
    expect(page.locator("#no-schedules")).to_be_visible(timeout=SLOW)
    expect(page.locator("#overview-schedules")).to_be_hidden()
    body = {
        "kind": "schedule.create",
        "head": {"corrId": "s", "version": "1"},
        "data": {
            "id": "nightly-report",
            "cron": "0 3 * * *",
            "promiseId": "{{.id}}.{{.timestamp}}",
            "promiseTimeout": 60_000,
        },
    }
    httpx.post(f"{system.server_url}/", json=body, timeout=30).raise_for_status()
    row = page.locator('#overview-schedules tr[data-schedule="nightly-report"]')
    expect(row.locator('[data-field="cron"]')).to_have_text("0 3 * * *", timeout=SLOW)
    expect(row.locator('[data-field="last_run"]')).to_have_text("never")
    assert (row.locator('[data-field="next_run"]').text_content() or "").endswith(":00:00")
    expect(page.locator("#no-schedules")).to_be_hidden()
    listed = system.cli("schedules", "--json")
    assert listed.returncode == 0, listed.stderr
    [schedule] = json.loads(listed.stdout)["schedules"]
    assert (schedule["id"], schedule["cron"], schedule["group"]) == (
        "nightly-report",
        "0 3 * * *",
        None,
    )


def sleeping_step(reader: ServerReader, invocation: str) -> tuple[CallNode, CallNode] | None:
    """baz and its durable sleep, once baz sleeps and has handed its task back."""
    try:
        graph = reader.call_graph(invocation)
    except UnknownInvocation:  # the gateway has not made it yet
        return None
    baz = next((node for node in graph.walk() if node.function == "baz"), None)
    sleep = next((node for node in graph.walk() if node.kind is CallKind.SLEEP), None)
    if baz is None or sleep is None or sleep.state is not PromiseState.PENDING:
        return None
    return (baz, sleep) if reader.task_state(baz.id) != "acquired" else None


def test_the_timeline_marks_a_resume_on_the_replica_that_replaced_a_killed_one(
    page: Page, system: System
) -> None:
    """`asyncrpc kill c` while baz sleeps (c's 1.5 s delay), then `asyncrpc start c`.

    baz's task holds no lease while it sleeps; when the sleep ends the server gives it
    to c's new replica, and the timeline names both replicas: a resume, not a retry.
    A kill must land within the sleep; on a loaded machine a command's start can miss
    it, so a missed one is tried again with a new invocation.
    """
    with ServerReader(system.server_url) as reader:
        for attempt in range(3):
            invocation = f"resume-{attempt}"
            started = httpx.post(f"{system.gateway_url}/await-chain?id={invocation}&wait=0")
            assert started.status_code == 202, started.text
            baz, sleep = wait_until(
                lambda name=invocation: sleeping_step(reader, name),
                60,
                "baz's durable sleep",
                poll=0.05,
            )
            killed = system.cli("kill", "c")
            assert killed.returncode == 0, killed.stderr
            in_time = (reader.get(sleep.id) or sleep).state is PromiseState.PENDING
            restarted = system.cli("start", "c")
            assert restarted.returncode == 0, restarted.stderr
            if in_time:
                break
        else:
            pytest.fail("`asyncrpc kill c` never landed within baz's 1.5 s sleep")
        wait_until(
            lambda: (reader.get(invocation) or sleep).state is PromiseState.RESOLVED,
            SLOW / 1000,
            f"{invocation} to resolve on c's new replica",
        )
    graph = httpx.get(
        f"{system.dashboard_url}api/invocations/{invocation}/graph?tasks=true",
        headers=system.bearer(),
        timeout=30,
    ).json()
    [baz_json] = [n for n in walk(graph) if n["function"] == "baz"]
    attempts = baz_json["attempts"]
    [[before, after]] = attempts["moves"]
    assert before != after and before.startswith("c-1-") and after.startswith("c-1-")
    assert (attempts["known"], attempts["resumes"], attempts["takeovers"]) == ("all", 1, 0)
    browse(page, system)
    page.click(f'button[aria-label="Show the call graph of {invocation}"]')
    page.get_by_role("button", name="Timeline", exact=True).click()
    row = page.locator(f'svg.timeline g.row[data-step="{baz.id}"]')
    expect(row).to_have_attribute("data-moves", "1")
    expect(row).to_contain_text(f"resumed on {after}, not {before}")
    expect(row.locator("circle.mark.moved")).to_have_count(1)
    assert "retr" not in (row.locator("text.bar-label").text_content() or "")
    page.get_by_role("button", name="Graph", exact=True).click()


def walk(node: dict[str, object]) -> Iterator[dict[str, object]]:
    yield node
    for child in node["children"]:  # type: ignore[attr-defined]
        yield from walk(child)


def test_the_first_paint_needs_no_feed(page: Page, system: System) -> None:
    """With the event feed blocked, the page still shows the replicas and the invocations."""
    context = page.context
    first = context.new_page()
    first.route("**/api/events", lambda route: route.abort())
    first.goto(system.dashboard_url)
    first.wait_for_selector('#replicas tr[data-replica="b.1"]')
    assert first.locator("#replicas tbody tr").count() == 11
    assert first.locator("#invocations tbody tr").count() > 0
    assert first.locator("#flow-list .flow").count() == 3
    first.close()


def test_keyboard_and_light_and_dark(browser: Browser, system: System) -> None:
    fan_out = httpx.post(f"{system.gateway_url}/fan-out-workflow?id=keyboard-fan-out", timeout=60)
    assert fan_out.json() == {"message": 3}
    colors = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(system.sign_in_url())
        page.wait_for_selector(LIVE, timeout=SLOW)
        colors[scheme] = page.evaluate(
            "[getComputedStyle(document.documentElement).backgroundColor,"
            " getComputedStyle(document.querySelector('.card')).color]"
        )
        if scheme == "dark":
            page.get_by_label("Search promises").fill("keyboard-fan-out*")
            page.keyboard.press("Enter")
            page.wait_for_selector('#promise-list tr[data-promise="keyboard-fan-out"]')
            page.get_by_label("Search promises").focus()
            order = []
            for _ in range(4):
                page.keyboard.press("Tab")
                order.append(
                    page.evaluate("document.activeElement.id || document.activeElement.textContent")
                )
            assert order[:3] == ["promise-state", "promise-role", "Search"], order
            page.keyboard.press("Tab")  # the first promise found
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline == "solid"
            opened = page.evaluate("document.activeElement.textContent")
            page.keyboard.press("Enter")
            expect(page.locator('#detail-body [data-field="id"]')).to_have_text(opened)
            assert page.evaluate("document.activeElement.id") == "detail-title"
        context.close()
    assert colors["light"][0] == "rgb(244, 245, 248)"
    assert colors["dark"][0] == "rgb(18, 21, 28)"
    assert colors["light"][1] != colors["dark"][1]


def test_the_promise_browser_screenshot(browser: Browser, system: System, tmp_path: Path) -> None:
    # The same id again: the gateway answers with the invocation that ran (or runs it).
    httpx.post(f"{system.gateway_url}/await-chain?id=detail-1", timeout=60).raise_for_status()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(system.sign_in_url())
    page.wait_for_selector(LIVE, timeout=SLOW)
    browse(page, system, "?q=detail-1*#/promises/detail-1:1")
    expect(page.locator('#detail-body [data-field="function"]')).to_have_text("bar")
    page.evaluate("document.querySelector('#promises-title').scrollIntoView({block: 'start'})")
    page.evaluate("window.scrollBy(0, -12); document.activeElement.blur()")
    target = (
        PROMISES_SCREENSHOT if os.environ.get("ASYNCRPC_UPDATE_SCREENSHOT") else tmp_path / "p.png"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 20_000
    context.close()


@pytest.fixture
def dashboard_with_token(tmp_path: Path) -> Iterator[str]:
    """A dashboard alone (over a supervisor that runs nothing) that wants the token `s3cret`."""
    port = free_port()
    app = make_app(dashboard(tmp_path, token="s3cret", port=port))
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_with_a_token_the_page_asks_for_it(browser: Browser, dashboard_with_token: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(dashboard_with_token)
    page.wait_for_selector("#login-token")
    assert page.evaluate("document.activeElement.id") == "login-token"
    page.keyboard.type("wrong")
    page.keyboard.press("Enter")
    page.wait_for_selector("#login-error:has-text('wrong token')")
    page.fill("#login-token", "s3cret")
    page.keyboard.press("Enter")
    page.wait_for_selector("#login", state="hidden")
    page.wait_for_selector(LIVE)
    page.wait_for_selector("#flow-list .flow[data-flow='fan-out']")
    context.close()


def test_the_gateway_docs_work_offline(browser: Browser, system: System) -> None:
    context = browser.new_context()
    elsewhere: list[str] = []

    def only_this_machine(route: Route) -> None:
        url = route.request.url
        if urlparse(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    context.route("**/*", only_this_machine)
    docs = context.new_page()
    docs.goto(f"{system.gateway_url}/docs")
    docs.wait_for_selector(".opblock-summary-path", timeout=SLOW)
    paths = docs.eval_on_selector_all(
        ".opblock-summary-path", "paths => paths.map(p => p.textContent)"
    )
    assert "/await-chain" in paths
    assert elsewhere == []
    context.close()
