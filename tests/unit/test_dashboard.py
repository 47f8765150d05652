"""The dashboard without a browser: its access rules, its event feed, its API, the demo runner.

The API runs over a real Supervisor with nothing started (its plan has no
replicas) and a server reader pointed at a port nobody listens on, so every
answer here is the dashboard's own (tests/support/dashboard.py).
tests/e2e/test_dashboard.py runs the demo runner's command as a process, and
tests/e2e/test_dashboard_browser.py drives the page against a running system.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from resonate.connections.sse import resolve_target

from asyncrpc.dashboard.app import Dashboard, make_app
from asyncrpc.dashboard.events import Source, feed
from asyncrpc.dashboard.invocation_json import RECENT, InvocationSummary, recent_invocations
from asyncrpc.dashboard.promise_json import Overview, WaitKind, why_pending
from asyncrpc.dashboard.serve import open_dashboard
from asyncrpc.dashboard.shared_poll import SharedPoll
from asyncrpc.lesson.topology import FLOWS
from asyncrpc.protocol.records import PromiseRecord, TaskRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG, TARGET_TAG
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.server.engine import Engine
from asyncrpc.server.store import Store
from asyncrpc.supervise.status import ReplicaState
from harness.isolation import free_port
from tests.support.dashboard import PORT, SECRET, dashboard
from tests.support.loop_turns import loop_turns
from tests.support.server import FAR, Clock, send
from tests.support.status import replica_status

BASE = f"http://127.0.0.1:{PORT}"
SIGNED = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
def anyone(tmp_path: Path) -> Iterator[TestClient]:
    """A client of the dashboard that has not signed in."""
    with TestClient(make_app(dashboard(tmp_path)), base_url=BASE) as client:
        yield client


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    """A client that sends the run's secret, as a script does."""
    with TestClient(make_app(dashboard(tmp_path)), base_url=BASE, headers=SIGNED) as client:
        yield client


# -- who may use it -------------------------------------------------------------


def test_without_resonate_token_the_api_wants_the_runs_secret(anyone: TestClient) -> None:
    assert anyone.get("/").status_code == 200  # the page itself asks for the secret
    assert anyone.get("/static/app.js").status_code == 200
    assert anyone.get("/api/session").json() == {"authorized": False}
    for method, path in [("GET", "/api/status"), ("GET", "/api/events"), ("GET", "/api/logs/b")]:
        answer = anyone.request(method, path)
        assert answer.status_code == 401, path
        assert "asyncrpc ui" in answer.json()["error"]
    # What another local user's curl did to a replica: refused.
    assert anyone.post("/api/replicas/c.1/kill").status_code == 401
    assert anyone.post("/api/flows/await-chain", json={}).status_code == 401
    assert anyone.post("/api/demo", json={"flow": "fan-out"}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert anyone.get("/api/status", headers=wrong).status_code == 401
    assert anyone.get("/api/status", headers=SIGNED).json()["dashboard"] == f"{BASE}/"


def test_signing_in_gives_a_random_session_never_the_secret(tmp_path: Path) -> None:
    app = make_app(dashboard(tmp_path, token="resonate-token"))
    with TestClient(app, base_url=BASE) as http:
        assert http.post("/api/session", json={"token": "nope"}).status_code == 401
        assert http.post("/api/session", json={"token": "é"}).status_code == 401
        login = http.post("/api/session", json={"token": SECRET})
        assert login.status_code == 204
        cookie = login.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        session = rest.partition(";")[0]
        assert name == f"asyncrpc_dashboard_{PORT}"
        assert SECRET not in cookie and "resonate-token" not in cookie
        assert len(session) >= 40
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        assert http.get("/api/session").json() == {"authorized": True}
        assert http.get("/api/status").status_code == 200
        # A second sign-in is another session; RESONATE_TOKEN signs in too.
        again = http.post("/api/session", json={"token": "resonate-token"})
        assert again.status_code == 204
        assert again.headers["set-cookie"].partition(";")[0] != f"{name}={session}"
    with TestClient(app, base_url=BASE) as stranger:
        # A session id is what the server handed out, not anything that looks like one.
        stranger.cookies.set(name, "made-up")
        assert stranger.get("/api/status").status_code == 401
        stranger.cookies.set(name, SECRET)
        assert stranger.get("/api/status").status_code == 401
        stranger.cookies.set(name, session)
        assert stranger.get("/api/status").status_code == 200


def test_only_this_machine_and_the_page_itself(http: TestClient) -> None:
    assert http.get("/api/status").status_code == 200
    assert http.get("/api/status", headers={"Host": "evil.example:5999"}).status_code == 403
    assert http.get("/", headers={"Host": "evil.test"}).status_code == 403
    assert http.get("/", headers={"Host": f"localhost:{PORT}"}).status_code == 200
    foreign = {"Origin": "http://evil.example"}
    assert http.post("/api/replicas/b/kill", headers=foreign).status_code == 403
    # Another port of 127.0.0.1 is the same site to a browser, but not this page.
    neighbour = {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"}
    refused = http.post("/api/replicas/b/kill", headers=neighbour)
    assert refused.status_code == 403 and "another site" in refused.json()["error"]
    assert http.get("/api/status", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    form = http.post(
        "/api/flows/await-chain", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert form.status_code == 415 and "application/json" in form.json()["error"]
    own = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert http.post("/api/replicas/b/kill", headers=own).status_code == 409
    # Following a link to the page from elsewhere opens it; its API stays closed to that site.
    assert http.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


# -- what it answers ------------------------------------------------------------


def test_wrong_names_and_values_are_4xx_with_a_message(http: TestClient) -> None:
    cases = [
        ("post", "/api/replicas/zz/kill", None, 400, "zz"),
        ("post", "/api/replicas/b/kill", None, 409, "not part of this supervisor"),
        ("post", "/api/flows/no-such-flow", {}, 400, "Valid flows"),
        ("post", "/api/demo", {"flow": "fan-out", "victim": "b"}, 400, "not part of fan-out"),
        ("post", "/api/demo", {"flow": "fan-out", "delay": 0}, 400, "--delay 0"),
        ("get", "/api/logs/b", None, 404, "no log"),
        ("get", "/api/logs/nope", None, 400, "nope"),
        ("get", "/api/invocations/x/graph", None, 503, "unreachable"),
    ]
    for method, path, body, status, words in cases:
        answer = http.request(method.upper(), path, json=body)
        assert answer.status_code == status, (path, answer.text)
        assert words in answer.json()["error"], (path, answer.text)


def test_logs_invocations_and_topology(http: TestClient, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "b.1.log").write_text("one\ntwo\nthree\n")
    assert http.get("/api/logs/b.1?lines=2").json() == {"name": "b.1", "lines": ["two", "three"]}
    refused = http.get("/api/logs/b.1?lines=0")
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("lines='0' is not valid: use a whole number from 1")

    invocations = http.get("/api/invocations").json()
    assert invocations["invocations"] == []
    assert "unreachable" in invocations["error"]

    flows = {flow["name"]: flow for flow in http.get("/api/topology").json()["flows"]}
    assert flows["await-chain"]["victims"] == ["server", "gateway", "a", "b", "c"]
    assert flows["fan-out"]["default_victim"] == "h"


def test_a_line_separator_in_a_log_forges_no_line(http: TestClient, tmp_path: Path) -> None:
    """What a replica wrote itself (not through the escaping formatter) splits at newlines only."""
    (tmp_path / "logs").mkdir()
    written = "INFO stream pid=x\u2028CRITICAL FORGED\x85x\x0cy\r\nnext\n"
    (tmp_path / "logs" / "server.log").write_text(written)
    lines = http.get("/api/logs/server").json()["lines"]
    assert lines == ["INFO stream pid=x\\u2028CRITICAL FORGED\\x85x\\x0cy", "next"]


# -- the event feed -------------------------------------------------------------


def test_the_feed_sends_a_source_when_it_changes_and_keeps_the_stream_alive() -> None:
    now = [0.0]
    values = iter(["a", "a", "b", "b", "b", "b", "b", "b"])
    reads: list[str] = []

    async def read() -> str:
        reads.append(value := next(values))
        return value

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def closed() -> bool:
        return len(reads) >= 8

    async def collect() -> list[str]:
        frames = feed(
            [Source("thing", read, 1.0)], closed, clock=lambda: now[0], sleeper=sleep, keepalive=3
        )
        return [item async for item in frames]

    frames = asyncio.run(collect())
    assert frames[0] == "retry: 1000\n\n"
    events = [frame for frame in frames if frame.startswith("event:")]
    assert events == ['event: thing\ndata: "a"\n\n', 'event: thing\ndata: "b"\n\n']
    assert ": keepalive\n\n" in frames  # three seconds passed without a change
    assert len(reads) == 8  # read once a second, not on every tick


def test_a_kill_is_sent_while_the_first_read_of_the_server_is_under_way() -> None:
    """A slow server (its history being read) holds up the invocations only, not a kill."""
    now = [0.0]
    ticks = [0]
    state = ["running"]

    async def collect() -> list[str]:
        answered = asyncio.Event()

        async def read_server() -> list[str]:
            await answered.wait()
            return ["inv-1"]

        async def status() -> dict[str, str]:
            return {"b.1": state[0]}

        async def sleep(seconds: float) -> None:
            now[0] += seconds
            ticks[0] += 1
            if ticks[0] == 3:
                state[0] = "killed"
            if ticks[0] == 6:
                answered.set()
            await asyncio.sleep(0)

        async def closed() -> bool:
            return ticks[0] >= 9

        poll = SharedPoll(read_server, 1.0, sleeper=lambda _: asyncio.Event().wait())
        sources = [Source("status", status, 0.0), Source("invocations", poll.available, 0.0)]
        async with poll.watching():
            return [
                frame async for frame in feed(sources, closed, clock=lambda: now[0], sleeper=sleep)
            ]

    # Were the feed to wait for the server's answer, no tick would pass and nothing answer it.
    frames = asyncio.run(asyncio.wait_for(collect(), 10))
    events = [frame for frame in frames if frame.startswith("event:")]
    assert events == [
        'event: status\ndata: {"b.1":"running"}\n\n',
        'event: status\ndata: {"b.1":"killed"}\n\n',
        'event: invocations\ndata: ["inv-1"]\n\n',
    ]


# -- the promise browser, the detail, the overview ---------------------------------


def encoded(value: object) -> dict[str, object]:
    """A value as the SDK sends it: base64 JSON."""
    return {"headers": {}, "data": base64.b64encode(json.dumps(value).encode()).decode()}


@pytest.fixture
def server(tmp_path: Path) -> tuple[Engine, Clock]:
    """The embedded server's engine, its clock moved by hand, holding one invocation's steps.

    ``flow-1`` (root, in service-a) awaits ``flow-1:1`` (an RPC call to service-b, pending),
    ran ``flow-1:2`` (a local run, rejected) and sleeps in ``flow-1:3``; ``other-1`` is
    another root, resolved.
    """
    clock = Clock(now=1_000_000)
    engine = Engine(Store(str(tmp_path / "server.db")), clock=clock)

    def create(promise_id: str, function: str | None, **tags: str) -> None:
        clock.now += 1000
        param = encoded({"func": function, "args": [1], "kwargs": {}}) if function else None
        data = {"id": promise_id, "timeoutAt": FAR, "tags": tags, "param": param}
        if tags.get("resonate:timer"):
            data["timeoutAt"] = clock.now + 60_000
        assert send(engine, "promise.create", **data)["head"]["status"] == 200

    a, b = "poll://any@service-a", "poll://any@service-b"
    create("flow-1", "foo", **{"resonate:origin": "flow-1", "resonate:target": a})
    step = {"resonate:origin": "flow-1", "resonate:parent": "flow-1"}
    create("flow-1:1", "bar", **step, **{"resonate:target": b})
    create("flow-1:2", "helper", **step)
    create("flow-1:3", None, **step, **{"resonate:timer": "true"})
    create("other-1", "foo", **{"resonate:origin": "other-1", "resonate:target": a})
    rejected = encoded({"message": "helper broke <on purpose>"})
    send(engine, "promise.settle", id="flow-1:2", state="rejected", value=rejected)
    send(engine, "promise.settle", id="other-1", state="resolved", value=encoded(3))
    return engine, clock


@pytest.fixture
def served(tmp_path: Path, server: tuple[Engine, Clock]) -> Iterator[TestClient]:
    app = make_app(dashboard(tmp_path, engine=server[0]))
    with TestClient(app, base_url=BASE, headers=SIGNED) as client:
        yield client


def ids(answer: dict[str, list[dict[str, str]]]) -> list[str]:
    return [promise["id"] for promise in answer["promises"]]


def test_promises_by_pattern_state_and_role_newest_first(served: TestClient) -> None:
    assert ids(served.get("/api/promises").json()) == [
        "other-1",
        "flow-1:3",
        "flow-1:2",
        "flow-1:1",
        "flow-1",
    ]
    assert ids(served.get("/api/promises?q=flow-1*").json())[-1] == "flow-1"
    assert ids(served.get("/api/promises?q=*-1").json()) == ["other-1", "flow-1"]
    assert ids(served.get("/api/promises?role=root").json()) == ["other-1", "flow-1"]
    assert ids(served.get("/api/promises?role=rpc").json()) == ["flow-1:1"]
    assert ids(served.get("/api/promises?role=local").json()) == ["flow-1:2"]
    assert ids(served.get("/api/promises?role=sleep").json()) == ["flow-1:3"]
    assert ids(served.get("/api/promises?state=rejected").json()) == ["flow-1:2"]
    assert ids(served.get("/api/promises?state=pending&q=flow-1:*").json()) == [
        "flow-1:3",
        "flow-1:1",
    ]
    found = served.get("/api/promises?q=other-1").json()["promises"][0]
    assert (found["function"], found["value"], found["role"]) == ("foo", 3, "root")
    assert found["param"] == {"func": "foo", "args": [1], "kwargs": {}}


def test_promises_page_by_cursor(served: TestClient) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = served.get(f"/api/promises?limit=2&cursor={cursor}").json()
        assert page["matched"] == 5
        seen += ids(page)
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == ["other-1", "flow-1:3", "flow-1:2", "flow-1:1", "flow-1"]
    cases = [
        ("/api/promises?cursor=nonsense", "is not one a page gave"),
        ("/api/promises?role=boss", "Valid roles: root, rpc, local, sleep"),
        ("/api/promises?state=lost", "Valid states"),
        ("/api/promises?limit=0", "limit='0' is not valid"),
        ("/api/promises?limit=5000", "limit='5000' is not valid"),
    ]
    for path, words in cases:
        answer = served.get(path)
        assert answer.status_code == 400, path
        assert words in answer.json()["error"], (path, answer.text)


def test_the_detail_says_why_a_step_waits(served: TestClient) -> None:
    root = served.get("/api/promises/flow-1").json()
    assert root["promise"]["function"] == "foo" and root["promise"]["group"] == "service-a"
    assert root["wait"]["kind"] == "awaiting"
    # The sleep is awaited too until it is due; the local run settled.
    assert root["wait"]["awaits"] == ["flow-1:1", "flow-1:3"]
    assert [child["id"] for child in root["children"]] == ["flow-1:1", "flow-1:2", "flow-1:3"]
    step = served.get("/api/promises/flow-1:1").json()
    assert step["task"]["state"] == "pending"
    assert step["wait"]["kind"] == "no-replica"
    assert "no running replica in service-b" in step["wait"]["summary"]
    sleep = served.get("/api/promises/flow-1:3").json()
    assert sleep["wait"]["kind"] == "sleeping" and sleep["wait"]["until"] is not None
    assert sleep["task"] is None
    failed = served.get("/api/promises/flow-1:2").json()
    assert failed["wait"] is None
    assert failed["promise"]["error"] == "helper broke <on purpose>"
    assert failed["promise"]["role"] == "local"
    missing = served.get("/api/promises/nobody")
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]


def test_why_pending_names_the_replica_that_holds_the_task() -> None:
    record = PromiseRecord(
        "r:1", PromiseState.PENDING, "bar", tags={"resonate:target": "poll://any@service-b"}
    )
    task = TaskRecord("r:1", "acquired", version=2, pid="b-1-abc")
    replicas = [
        replace(replica_status("b.1", ReplicaState.RUNNING, pid=7), id="b-1-abc"),
        replace(replica_status("b.2", ReplicaState.KILLED, pid=8), id="b-2-def"),
    ]
    wait = why_pending(None, record, task, replicas)
    assert (wait.kind, wait.holder, wait.running) == (WaitKind.RUNNING, "b.1", ("b.1",))
    assert "runs in b.1 (acquired 2 time(s))" in wait.summary
    queued = why_pending(None, record, TaskRecord("r:1", "pending"), replicas)
    assert queued.kind is WaitKind.QUEUED and "b.1 run" in queued.summary
    alone = why_pending(None, record, TaskRecord("r:1", "pending"), replicas[1:])
    assert alone.kind is WaitKind.NO_REPLICA


def test_the_overview_counts_rates_and_errors(
    served: TestClient, server: tuple[Engine, Clock]
) -> None:
    answer = served.get("/api/overview").json()
    assert answer["counts"]["pending"] == 3
    assert answer["counts"]["resolved"] == 1 and answer["counts"]["rejected"] == 1
    assert answer["total"] == 5
    assert [error["id"] for error in answer["errors"]] == ["flow-1:2"]
    assert answer["errors"][0]["error"] == "helper broke <on purpose>"
    # The engine's clock is far behind the wall clock: no invocation in the last minutes.
    assert len(answer["rate"]) == 30 and sum(answer["rate"]) == 0
    records = [
        PromiseRecord("a", PromiseState.RESOLVED, created_at=95_000),
        PromiseRecord("b", PromiseState.PENDING, created_at=99_000),
        PromiseRecord(
            "b:1", PromiseState.PENDING, tags={"resonate:parent": "b"}, created_at=99_000
        ),
    ]
    rates = Overview.of(records, now=100_000).rate
    assert rates[-1] == 0.2 and sum(rates) == 0.2  # two roots in the last ten seconds


def test_the_overview_lists_the_schedules_soonest_first(
    served: TestClient, server: tuple[Engine, Clock]
) -> None:
    engine, _ = server
    assert served.get("/api/overview").json()["schedules"] == []
    for name, cron in (("yearly", "0 0 1 1 *"), ("minutely", "* * * * *")):
        data = {
            "id": name,
            "cron": cron,
            "promiseId": "{{.id}}.{{.timestamp}}",
            "promiseTimeout": 60_000,
            "promiseTags": {"resonate:target": "poll://any@service-a"},
        }
        assert send(engine, "schedule.create", **data)["head"]["status"] == 200
    answer = served.get("/api/overview").json()
    assert [s["id"] for s in answer["schedules"]] == ["minutely", "yearly"]
    first = answer["schedules"][0]
    assert (first["cron"], first["group"], first["last_run_at"]) == ("* * * * *", "service-a", None)
    assert first["next_run_at"] > first["created_at"] and answer["schedules_error"] is None


def test_the_index_embeds_the_first_snapshot_once_signed_in(tmp_path: Path) -> None:
    board = dashboard(tmp_path)
    board.failures.append({"id": "x", "flow": "fan-out", "error": "</script><script>alert(1)"})
    with TestClient(make_app(board), base_url=BASE) as client:
        assert 'id="first-snapshot"' not in client.get("/").text
        page = client.get("/", headers=SIGNED).text
    assert "</script><script>alert" not in page
    slot = page.split('id="first-snapshot">', 1)[1].split("</script>", 1)[0]
    snapshot = json.loads(slot)
    assert snapshot["invocations"]["failed_calls"][0]["error"] == "</script><script>alert(1)"
    assert {"now", "status", "topology"} <= set(snapshot)


def test_the_demo_offers_only_the_server_this_run_has(tmp_path: Path) -> None:
    embedded = make_app(dashboard(tmp_path))
    with TestClient(embedded, base_url=BASE, headers=SIGNED) as client:
        flows = client.get("/api/topology").json()["flows"]
        assert all("postgres" not in flow["victims"] for flow in flows)
        assert all("server" in flow["victims"] for flow in flows)
        refused = client.post("/api/demo", json={"flow": "fan-out", "victim": "postgres"})
        assert refused.status_code == 400
        assert "no postgres for the demo to kill" in refused.json()["error"]
    postgres = make_app(dashboard(tmp_path, postgres_schema="/schema/resonate.sql"))
    with TestClient(postgres, base_url=BASE, headers=SIGNED) as client:
        flows = client.get("/api/topology").json()["flows"]
        assert all("postgres" in f["victims"] and "server" not in f["victims"] for f in flows)


def seeded_server(invocations: int) -> tuple[Engine, Counted]:
    """An in-process server holding ``invocations`` await-chain runs (a root and two steps
    each) and a few fan-outs, and a reader of it that counts what it reads."""
    clock = [1_000_000]
    engine = Engine(Store(":memory:"), clock=lambda: clock[0])
    for flow, count in ((FLOWS["await-chain"], invocations), (FLOWS["fan-out"], 3)):
        target = resolve_target(flow.entry_group)
        for i in range(count):
            root = f"{flow.name}-{i}"
            call = {"func": flow.entry_function, "args": list(flow.entry_args)}
            param = {"headers": {}, "data": base64.b64encode(json.dumps(call).encode()).decode()}
            tags = {TARGET_TAG: target, ORIGIN_TAG: root}
            create(engine, root, param, tags)
            for step, group in enumerate(("service-b", "service-c")):
                step_tags = {TARGET_TAG: resolve_target(group), ORIGIN_TAG: root}
                create(engine, f"{root}.{step}", {}, step_tags)
            clock[0] += 1
    return engine, Counted(engine)


def create(engine: Engine, promise_id: str, param: dict[str, Any], tags: dict[str, str]) -> None:
    data = {"id": promise_id, "timeoutAt": 10**15, "param": param, "tags": tags}
    body = json.dumps({"kind": "promise.create", "head": {}, "data": data}).encode()
    assert engine.handle(body).status == 200


class Counted:
    """An httpx transport to an in-process engine that counts requests and promises answered."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.requests = 0
        self.promises = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        reply = self.engine.handle(request.content)
        answer = json.loads(reply.body)
        if isinstance(answer.get("data"), dict):
            self.promises += len(answer["data"].get("promises", ()))
        return httpx.Response(reply.status, content=reply.body)


def test_one_read_of_the_invocations_reads_the_same_whatever_is_stored() -> None:
    """The newest invocations of each flow, and never more promises than the page lists."""
    for stored in (30, 3000):
        _, counted = seeded_server(stored)

        async def read(counted: Counted = counted) -> list[InvocationSummary]:
            reader = AsyncServerReader("http://server", transport=counted.transport())
            try:
                return await recent_invocations(reader)
            finally:
                await reader.aclose()

        found = asyncio.run(read())
        assert counted.requests == len(FLOWS), stored
        assert counted.promises <= len(FLOWS) * RECENT, (stored, counted.promises)
        created = [
            *(f"await-chain-{i}" for i in range(stored)),
            "fan-out-0",
            "fan-out-1",
            "fan-out-2",
        ]
        assert [summary.id for summary in found] == created[::-1][:RECENT]


def test_every_open_page_shares_one_read_per_interval(tmp_path: Path) -> None:
    _, counted = seeded_server(2000)
    board = dashboard(tmp_path)
    board.reader = AsyncServerReader("http://server", transport=counted.transport())
    ticks: asyncio.Queue[None] = asyncio.Queue()

    async def next_tick(seconds: float) -> None:
        await ticks.get()

    board.invocations = SharedPoll(board.invocations_json, 0.5, sleeper=next_tick)

    async def pages() -> list[Any]:
        async with contextlib.AsyncExitStack() as pages:
            for _ in range(5):
                await pages.enter_async_context(board.invocations.watching())
            seen = [await board.invocations.latest() for _ in range(5)]
            for _ in range(3):
                ticks.put_nowait(None)
                while not ticks.empty():
                    await asyncio.sleep(0)
                await asyncio.sleep(0)
            seen.append(await board.invocations.latest())
        assert board.invocations.watchers == 0
        ticks.put_nowait(None)  # nobody watches: no read follows
        await asyncio.sleep(0.01)
        return seen

    seen = asyncio.run(pages())
    assert board.invocations.reads == 4, "one read at first and one per interval, for 5 pages"
    assert counted.requests == 4 * len(FLOWS)
    assert counted.promises <= 4 * len(FLOWS) * RECENT
    assert seen[0]["invocations"][0]["id"] == "fan-out-2"
    assert all(page == seen[0] for page in seen)


def test_the_loop_runs_while_the_dashboard_app_is_built(tmp_path: Path) -> None:
    """The app is built in a worker thread: the supervisor's loop asks for replicas meanwhile."""
    supervisor = dashboard(tmp_path).supervisor
    ticks: list[float] = []
    built: list[float] = []

    def slow_app(board: Dashboard) -> FastAPI:
        built.append(time.monotonic())
        time.sleep(0.3)  # as the first FastAPI app a process builds does
        built.append(time.monotonic())
        return make_app(board)

    async def scenario() -> None:
        async with loop_turns() as turns:
            running = await open_dashboard(supervisor, {}, free_port(), SECRET, build=slow_app)
            await running.close()
        ticks.extend(turns)

    asyncio.run(scenario())
    during = [at for at in ticks if built[0] <= at <= built[1]]
    assert len(during) >= 10, f"the loop ran {len(during)} times during a 0.3 s build"


def test_a_dashboard_that_cannot_be_built_frees_its_port(tmp_path: Path) -> None:
    supervisor = dashboard(tmp_path).supervisor
    port = free_port()

    def broken(board: Dashboard) -> FastAPI:
        raise RuntimeError("no app today")

    with pytest.raises(RuntimeError, match="no app today"):
        asyncio.run(open_dashboard(supervisor, {}, port, SECRET, build=broken))
    with socket.create_server(("127.0.0.1", port)):  # bound again: the failed start let it go
        pass
