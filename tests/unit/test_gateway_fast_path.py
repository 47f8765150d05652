"""The flow routes' fast path answers exactly as the FastAPI routes it stands in front of.

:func:`~asyncrpc.gateway.app.create_app` (the gateway as it runs: flow routes
answered by :class:`~asyncrpc.gateway.app.GatewayApp` itself) and
:func:`~asyncrpc.gateway.app.create_api` (the FastAPI app alone, which
declares the same routes) each get their own in-process server and the same
requests, in the same order; every answer must match: status, body and the
headers a caller reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from asyncrpc.gateway.app import GatewayApp, create_api, create_app
from asyncrpc.gateway.membership import ClientFactory, GatewayClient
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.lesson.topology import FLOWS
from asyncrpc.network.health import HEALTHY, LinkHealth
from asyncrpc.protocol.errors import NotStarted
from tests.support.gateway import local_client
from tests.support.in_process import local_reader, watched_in_process

SETTINGS = GatewaySettings(server_url="http://127.0.0.1:1", gateway_id="gateway-fast")
#: Where a client on this machine reaches the gateway (it listens on 127.0.0.1).
BASE = f"http://127.0.0.1:{SETTINGS.port}"

#: The headers a caller reads; ``date`` and the like differ by nature.
COMPARED_HEADERS = (
    "content-type",
    "content-length",
    "x-invocation-id",
    "x-invocation-reattached",
    "location",
)

#: (method, path and query): one after another, against each app.
REQUESTS: tuple[Request, ...] = (
    ("POST", "/await-chain"),  # the flow's fixed id
    ("POST", "/await-chain"),  # re-attached
    ("POST", "/await-chain?id=fast-1"),
    ("POST", "/await-chain?id=fast-1&wait=5"),
    ("POST", "/await-chain?id=first&id=fast-2"),  # the last of a repeated parameter counts
    ("POST", "/await-chain?id=fast-3&other=ignored"),
    ("POST", "/fan-out?id=fast-4"),
    ("POST", "/detached-chain?id=fast-5"),
    ("POST", "/detached-chain?id=fast-5&wait=nan"),  # a flow that does not wait ignores wait
    ("POST", "/await-chain?id=fast-5"),  # the id is the detached chain's: 409
    ("POST", "/await-chain?id="),
    ("POST", "/await-chain?id=bad:id"),
    ("POST", "/await-chain?id=" + "x" * 129),
    ("POST", "/await-chain?id=a%0aERROR"),
    ("POST", "/await-chain?wait=nan"),
    ("POST", "/await-chain?wait=1e9"),
    ("POST", "/await-chain?wait=3600.5"),
    ("POST", "/await-chain?wait=%EF%BC%95"),
    ("POST", "/await-chain?wait=5&wait=x"),
    ("POST", "/await-chain?id=bad:id&wait=x"),  # wait is checked first
    ("POST", "/await%2Dchain?id=fast-6"),  # the path as uvicorn decodes it
    ("POST", "/await-chain/"),  # a trailing slash is another route: FastAPI's redirect
    ("GET", "/await-chain"),
    ("DELETE", "/await-chain"),
    ("PUT", "/fan-out"),
    ("POST", "/nowhere"),
)


#: (method, path and query[, headers]).
Request = tuple[str, str] | tuple[str, str, dict[str, str]]


def answers(
    app: Any, requests: tuple[Request, ...], raise_server_exceptions: bool = True
) -> list[dict[str, Any]]:
    seen = []
    client = TestClient(
        app,
        base_url=BASE,
        follow_redirects=False,
        raise_server_exceptions=raise_server_exceptions,
    )
    with client as http:
        for method, target, *headers in requests:
            response = http.request(method, target, headers=headers[0] if headers else None)
            headers = {name: response.headers.get(name) for name in COMPARED_HEADERS}
            seen.append(
                {"request": f"{method} {target}", "status": response.status_code, **headers}
                | {"body": response.content}
            )
    return seen


def test_every_flow_route_answer_matches_the_fastapi_route() -> None:
    fast = answers(create_app(SETTINGS, local_client()), REQUESTS)
    api = answers(create_api(SETTINGS, local_client()), REQUESTS)

    assert fast == api
    statuses = {answer["status"] for answer in fast}
    assert {200, 307, 400, 404, 405, 409} <= statuses  # the cases are the ones meant


def test_past_the_wait_both_answer_202_with_the_location() -> None:
    requests = (("POST", "/await-chain?id=slow&wait=0"),)
    fast = answers(create_app(SETTINGS, local_client(delay=0.3)), requests)
    api = answers(create_api(SETTINGS, local_client(delay=0.3)), requests)

    assert fast == api
    assert (fast[0]["status"], fast[0]["location"]) == (202, "/invocations/slow")


def failing_client(exc: Exception, health: LinkHealth = HEALTHY) -> ClientFactory:
    """A client whose every start fails with ``exc`` (the request tag is made first)."""

    def make(_: GatewaySettings) -> GatewayClient:
        resonate, channel, server = watched_in_process(0.0)

        def request_id() -> str:
            raise exc

        return GatewayClient(resonate, channel, local_reader(server), lambda: health, request_id)

    return make


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("/home/someone/.asyncrpc/server.db: token s3cret")],
    ids=["unforeseen"],
)
def test_an_unforeseen_error_is_the_same_500_without_its_text(exc: Exception) -> None:
    requests = (("POST", "/await-chain?id=boom"), ("POST", "/detached-chain?id=boom"))
    fast = answers(create_app(SETTINGS, failing_client(exc)), requests)
    # FastAPI re-raises an unforeseen error after answering it (for the server's log).
    api = answers(create_api(SETTINGS, failing_client(exc)), requests, False)

    assert fast == api
    assert all(answer["status"] == 500 and b"s3cret" not in answer["body"] for answer in fast)


class CountingApi:
    """Stands for the FastAPI app and notes each request that reaches it."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.paths: list[tuple[str, str]] = []

    @property
    def state(self) -> Any:
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append((scope["method"], scope["path"]))
        await self.api(scope, receive, send)


@pytest.fixture
def counted() -> Iterator[tuple[TestClient, CountingApi]]:
    app = create_app(SETTINGS, local_client())
    counting = CountingApi(app.api)
    fast = GatewayApp(counting, app.flows, app.guard)  # type: ignore[arg-type]
    with TestClient(fast, base_url=BASE) as http:
        yield http, counting


def test_flow_posts_never_reach_fastapi_and_everything_else_does(
    counted: tuple[TestClient, CountingApi],
) -> None:
    http, api = counted
    for flow in FLOWS.values():
        assert http.post(flow.route, params={"id": f"counted-{flow.name}"}).status_code == 200
    assert http.post("/await-chain", params={"wait": "x"}).status_code == 400
    assert api.paths == []
    http.get("/healthz")
    http.get("/docs")
    http.delete("/await-chain")
    assert api.paths == [("GET", "/healthz"), ("GET", "/docs"), ("DELETE", "/await-chain")]


def test_docs_still_document_every_flow_route() -> None:
    with TestClient(create_app(SETTINGS, local_client()), base_url=BASE) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for flow in FLOWS.values():
        post: dict[str, Any] = paths[flow.route]["post"]
        assert post["summary"] == flow.summary
        assert post["description"].startswith("Answers")
        expected = ["id", "wait"] if flow.waits_for_result else ["id"]
        assert [p["name"] for p in post["parameters"]] == expected


#: What a web page elsewhere sends to a flow route, one rule of the browser guard each.
FROM_A_PAGE: tuple[Request, ...] = (
    ("POST", "/await-chain?id=page-1", {"Origin": "http://evil.test"}),
    ("POST", "/await-chain?id=page-2", {"Sec-Fetch-Site": "cross-site"}),
    ("POST", "/detached-chain?id=page-3", {"Content-Type": "text/plain"}),
    ("POST", "/fan-out?id=page-4", {"Host": "evil.test:5000"}),
    ("GET", "/invocations/page-1", {"Host": "evil.test:5000"}),
    ("GET", "/invocations/page-1"),  # nothing of the above started
    ("GET", "/invocations/page-3"),
)


def test_a_page_elsewhere_is_refused_by_the_fast_path_as_by_fastapi() -> None:
    fast = answers(create_app(SETTINGS, local_client()), FROM_A_PAGE)
    api = answers(create_api(SETTINGS, local_client()), FROM_A_PAGE)

    assert fast == api
    assert [answer["status"] for answer in fast] == [403, 403, 415, 403, 403, 404, 404]


def test_a_page_elsewhere_never_reaches_a_flow_or_fastapi(
    counted: tuple[TestClient, CountingApi],
) -> None:
    http, api = counted
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}, {"Host": "evil.test"}):
        assert http.post("/await-chain", params={"id": "page"}, headers=headers).status_code == 403
    assert api.paths == []
    assert http.get("/invocations/page").status_code == 404  # it reached FastAPI: not started
    assert api.paths == [("GET", "/invocations/page")]


def test_a_start_the_server_never_confirmed_is_the_same_503_saying_not_started() -> None:
    exc = NotStarted("unconfirmed", "connection refused")
    down = LinkHealth(False, "no poll stream yet")
    requests: tuple[Request, ...] = (("POST", "/await-chain?id=unconfirmed"),)
    fast = answers(create_app(SETTINGS, failing_client(exc, down)), requests)
    api = answers(create_api(SETTINGS, failing_client(exc, down)), requests)

    assert fast == api
    body = json.loads(fast[0]["body"])
    assert (fast[0]["status"], body["id"], body["started"]) == (503, "unconfirmed", False)
    assert "connection refused; no poll stream yet" in body["error"]


def test_metrics_count_the_flow_calls_the_fast_path_answers(
    counted: tuple[TestClient, CountingApi],
) -> None:
    http, api = counted
    assert http.post("/await-chain", params={"id": "metered"}).status_code == 200
    assert http.post("/detached-chain", params={"id": "metered-d"}).status_code == 200
    assert http.post("/await-chain", params={"wait": "x"}).status_code == 400
    assert api.paths == []  # all three answered ahead of FastAPI
    text = http.get("/metrics").text
    found = {
        (sample.labels["flow"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "asyncrpc_gateway_invocations_total"
    }
    assert found == {
        ("await-chain", "resolved"): 1,
        ("detached-chain", "started"): 1,
        ("await-chain", "invalid"): 1,
    }
