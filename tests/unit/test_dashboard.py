"""The dashboard without a browser: its access rules, its event feed, its API, the demo runner.

The API runs over a real Supervisor with nothing started (its plan has no
replicas) and a server reader pointed at a port nobody listens on, so every
answer here is the dashboard's own (tests/support/dashboard.py).
tests/e2e/test_dashboard.py runs the demo runner's command as a process, and
tests/e2e/test_dashboard_browser.py drives the page against a running system.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from asyncrpc.dashboard.app import make_app
from asyncrpc.dashboard.events import Source, feed
from asyncrpc.demo.scenario import killable_nodes
from asyncrpc.lesson.topology import FLOWS
from tests.support.dashboard import PORT, SECRET, dashboard

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
    assert flows["await-chain"]["victims"] == killable_nodes(FLOWS["await-chain"])
    assert {"server", "gateway", "a", "b", "c"} <= set(flows["await-chain"]["victims"])
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
