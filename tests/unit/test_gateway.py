"""The gateway app in-process: its client runs the flows on the SDK's in-process server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from resonate.error import ConnectorError
from resonate_base.connections import Network

from asyncrpc.gateway.app import create_app
from asyncrpc.gateway.membership import GatewayClient
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.lesson.topology import FLOWS
from asyncrpc.network.health import HEALTHY
from tests.support.gateway import local_client
from tests.support.in_process import watched_in_process

SETTINGS = GatewaySettings(server_url="http://127.0.0.1:1", gateway_id="gateway-test")
#: Where a client on this machine reaches the gateway (it listens on 127.0.0.1).
BASE = f"http://127.0.0.1:{SETTINGS.port}"


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(base_url=BASE, app=create_app(SETTINGS, local_client())) as client:
        yield client


def test_each_waiting_flow_answers_message_3(http: TestClient) -> None:
    for flow in (FLOWS["await-chain"], FLOWS["fan-out"]):
        response = http.post(flow.route)
        assert response.status_code == 200
        assert response.content == b'{"message":3}'
        assert response.headers["X-Invocation-Id"] == flow.default_id


def test_detached_chain_answers_that_it_started(http: TestClient) -> None:
    response = http.post("/detached-chain", params={"id": "det-1"})

    assert response.status_code == 200
    assert response.json() == {"message": "detached-chain started"}
    assert response.headers["X-Invocation-Id"] == "det-1"


def test_past_the_wait_it_answers_202_then_get_has_the_result() -> None:
    with TestClient(base_url=BASE, app=create_app(SETTINGS, local_client(delay=0.3))) as http:
        response = http.post("/await-chain", params={"id": "later", "wait": 0})

        assert response.status_code == 202
        assert response.json() == {
            "id": "later",
            "state": "pending",
            "location": "/invocations/later",
        }
        assert response.headers["Location"] == "/invocations/later"
        assert http.get("/invocations/later").json()["state"] == "pending"
        # Re-attach and wait this time.
        assert http.post("/await-chain", params={"id": "later", "wait": 20}).json() == {
            "message": 3
        }
        assert http.get("/invocations/later").json() == {
            "id": "later",
            "state": "resolved",
            "result": 3,
            "function": "foo",
        }


def test_healthz_is_503_with_the_reason_while_the_server_is_not_reached() -> None:
    with TestClient(base_url=BASE, app=create_app(SETTINGS, local_client(connected=False))) as http:
        response = http.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"error": "cannot reach the Resonate server: no poll stream yet"}


def test_healthz_ok(http: TestClient) -> None:
    assert http.get("/healthz").json() == {
        "status": "ok",
        "id": "gateway-test",
        "server": "http://127.0.0.1:1",
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/invocations/missing", 404),
        ("GET", "/invocations/bad:id", 400),
        ("POST", "/await-chain?wait=99999", 400),
        ("POST", "/await-chain?id=", 400),
        ("DELETE", "/await-chain", 405),
        ("GET", "/nowhere", 404),
    ],
)
def test_errors_are_json_with_an_error_key(
    http: TestClient, method: str, path: str, status: int
) -> None:
    response = http.request(method, path)

    assert response.status_code == status
    assert list(response.json()) == ["error"]
    assert response.headers["content-type"] == "application/json"


def test_docs_and_index(http: TestClient) -> None:
    docs = http.get("/docs")
    assert docs.status_code == 200
    assert "https://" not in docs.text  # nothing from a CDN: the docs work offline
    for asset in re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', docs.text):
        assert http.get(asset).status_code == 200, asset
    assert len(re.findall("/docs-assets/", docs.text)) == 3
    routes = [flow["route"] for flow in http.get("/").json()["flows"]]
    assert routes == [f"POST {flow.route}" for flow in FLOWS.values()]


def test_the_docs_describe_each_flow_routes_query(http: TestClient) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for flow in FLOWS.values():
        parameters = paths[flow.route]["post"]["parameters"]
        expected = ["id", "wait"] if flow.waits_for_result else ["id"]
        assert [(p["name"], p["in"]) for p in parameters] == [(n, "query") for n in expected]


@pytest.mark.parametrize(
    ("query", "valid"),
    [
        ("wait=nan", "from 0 up to 3600"),
        ("wait=inf", "from 0 up to 3600"),
        ("wait=-1", "from 0 up to 3600"),
        ("wait=1e9", "from 0 up to 3600"),
        ("wait=99999", "from 0 up to 3600"),
        ("wait=3600.5", "from 0 up to 3600"),
        ("wait=", "from 0 up to 3600"),
        ("wait=1_0", "digits 0-9"),
        ("wait=%EF%BC%95", "digits 0-9"),  # a fullwidth 5
        ("id=%C2%B2", "letters, digits"),  # a superscript 2
        ("id=a%0aERROR", "letters, digits"),
        ("id=" + "x" * 129, "1-128"),
    ],
)
def test_a_bad_wait_or_id_is_a_400_saying_what_is_valid(
    http: TestClient, query: str, valid: str
) -> None:
    response = http.post(f"/await-chain?{query}")

    assert response.status_code == 400
    assert valid in response.json()["error"]


class BrokenReader:
    """A reader that fails the way nothing foresaw, with private details in the text."""

    SECRET = "/home/someone/.asyncrpc/server.db: token s3cret"

    async def get(self, invocation_id: str) -> None:
        raise RuntimeError(self.SECRET)

    async def aclose(self) -> None:
        return None


def test_a_500_carries_no_exception_text() -> None:
    def make(_: GatewaySettings) -> GatewayClient:
        resonate, channel, _ = watched_in_process(0.0, lambda requests: requests)
        reader = BrokenReader()
        return GatewayClient(resonate, channel, reader, lambda: HEALTHY)  # type: ignore[arg-type]

    app = create_app(SETTINGS, make)
    with TestClient(base_url=BASE, app=app, raise_server_exceptions=False) as client:
        response = client.get("/invocations/any")

    assert response.status_code == 500
    assert list(response.json()) == ["error"]
    assert "s3cret" not in response.text and "server.db" not in response.text
    assert "RuntimeError" not in response.text


class Wrapper:
    """A request channel around the real one (``around``): starts and stops it; subclasses
    decide what ``send`` does with each request."""

    inner: Network | None = None

    def around(self, inner: Network) -> Network:
        self.inner = inner
        return self

    async def start(self) -> None:
        assert self.inner is not None
        await self.inner.start()

    async def stop(self) -> None:
        assert self.inner is not None
        await self.inner.stop()


class RequestLog(Wrapper):
    """A request channel that notes the kind and promise of each request it carries."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []
        self.inner: Network | None = None

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        assert self.inner is not None
        envelope = json.loads(req)
        data = envelope.get("data") or {}
        self.sent.append((envelope["kind"], data.get("id") or data.get("awaited")))
        return await self.inner.send(req, headers)

    def about(self, promise_id: str) -> list[str]:
        """The kinds of the promise requests about ``promise_id``, in order."""
        return [kind for kind, id in self.sent if id == promise_id and kind.startswith("promise.")]


def test_a_start_costs_two_protocol_requests_new_or_reattached() -> None:
    """Create and listen, as the SDK's ``rpc``: no read to tell new from re-attached.

    In process the gateway's client also runs the functions, but a worker's requests
    are ``task.*`` (its promises travel inside them), so the promise requests about
    the invocation's id are the start's own.
    """
    log = RequestLog()
    with TestClient(
        base_url=BASE, app=create_app(SETTINGS, local_client(around=log.around))
    ) as http:
        new = http.post("/await-chain", params={"id": "counted"})
        assert log.about("counted") == ["promise.create", "promise.register_listener"]
        again = http.post("/await-chain", params={"id": "counted"})

    assert (new.json(), new.headers["X-Invocation-Reattached"]) == ({"message": 3}, "false")
    assert (again.json(), again.headers["X-Invocation-Reattached"]) == ({"message": 3}, "true")
    assert log.about("counted") == ["promise.create", "promise.register_listener"] * 2
    assert any(kind.startswith("task.") for kind, _ in log.sent)  # the worker's, not counted


#: What a page on another site sent: `fetch(url, {method: "POST", mode: "no-cors", body,
#: headers: {"Content-Type": "text/plain"}})`, in the headers a browser adds, one rule each.
FROM_A_PAGE = [
    ({"Origin": "http://evil.test"}, 403, "web page at 'http://evil.test'"),
    ({"Origin": "null"}, 403, "web page at 'null'"),
    ({"Sec-Fetch-Site": "cross-site"}, 403, "another site"),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:8080"}, 403, "another site"),
    ({"Content-Type": "text/plain;charset=UTF-8"}, 415, "application/json"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "application/json"),
    ({"Host": "evil.test:5000"}, 403, "Host 'evil.test:5000'"),
]


@pytest.mark.parametrize(("headers", "status", "words"), FROM_A_PAGE)
def test_a_page_elsewhere_starts_no_invocation(
    http: TestClient, headers: dict[str, str], status: int, words: str
) -> None:
    answer = http.post("/await-chain?id=from-a-page", headers=headers, content=b'{"x": 1}')
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert http.get("/invocations/from-a-page").status_code == 404


def test_programs_and_the_gateways_own_docs_page_may(http: TestClient) -> None:
    # curl, httpx, the SDKs: no Origin, the Host they dialled (127.0.0.1 or localhost).
    assert http.post("/await-chain?id=curl").json() == {"message": 3}
    assert http.post("/await-chain?id=json", json={}).json() == {"message": 3}
    local = {"Host": "localhost:5000"}
    assert http.post("/await-chain?id=local", headers=local).json() == {"message": 3}
    # "Try it out" on /docs: a page of the gateway's own origin.
    own = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert http.post("/await-chain?id=docs", headers=own).json() == {"message": 3}
    # A link from elsewhere may open the docs (a page of another origin cannot read them).
    assert http.get("/docs", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200
    assert http.get("/healthz", headers={"Host": "evil.test"}).status_code == 403


def test_bound_beyond_loopback_any_host_but_still_no_foreign_page() -> None:
    settings = GatewaySettings(
        server_url="http://127.0.0.1:1", gateway_id="gateway-test", host="0.0.0.0"
    )
    app = create_app(settings, local_client())
    with TestClient(app, base_url="http://gateway.lan:5000") as http:
        assert http.post("/await-chain?id=lan").json() == {"message": 3}
        evil = {"Origin": "http://evil.test"}
        assert http.post("/await-chain?id=evil", headers=evil).status_code == 403
        own = {"Origin": "http://gateway.lan:5000"}
        assert http.post("/await-chain?id=own", headers=own).status_code == 200


class Outage(Wrapper):
    """A request channel whose creates do not reach the server while ``down``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.down = False
        self.fail_first = fail_first
        self.refused = 0
        self.inner: Network | None = None

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        assert self.inner is not None
        if json.loads(req)["kind"] == "promise.create" and (
            self.down or self.refused < self.fail_first
        ):
            self.refused += 1
            raise ConnectorError(ConnectionRefusedError("connection refused"))
        return await self.inner.send(req, headers)


PATIENT = GatewaySettings(
    server_url="http://127.0.0.1:1", gateway_id="gateway-test", start_timeout=2.0
)


def test_a_create_that_fails_to_reach_the_server_is_sent_again_within_the_bound() -> None:
    outage = Outage(fail_first=3)
    with TestClient(create_app(PATIENT, local_client(around=outage.around)), base_url=BASE) as http:
        response = http.post("/await-chain", params={"id": "short-outage"})

    assert (response.status_code, response.json()) == (200, {"message": 3})
    assert response.headers["X-Invocation-Reattached"] == "false"
    assert outage.refused == 3


def test_past_the_bound_a_start_is_a_503_saying_not_started_and_the_id_can_be_sent_again() -> None:
    outage = Outage()
    outage.down = True
    with TestClient(create_app(PATIENT, local_client(around=outage.around)), base_url=BASE) as http:
        began = time.monotonic()
        refused = http.post("/await-chain", params={"id": "long-outage"})
        took = time.monotonic() - began
        unknown = http.get("/invocations/long-outage")
        outage.down = False
        again = http.post("/await-chain", params={"id": "long-outage", "wait": 10})

    assert refused.status_code == 503
    body = refused.json()
    assert (body["id"], body["started"]) == ("long-outage", False)
    assert "was NOT started" in body["error"] and "within 2s" in body["error"]
    assert "Send the same id again" in body["error"]
    assert 2.0 <= took < 3.5  # the time the message names, not more
    assert unknown.status_code == 404
    assert (again.status_code, again.json()) == (200, {"message": 3})
    assert again.headers["X-Invocation-Reattached"] == "false"
