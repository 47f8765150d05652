"""The flow routes' cheap parts give exactly what the general ones they stand for give.

A flow's answer (:class:`~asyncrpc.gateway.app.FlowReply`) is what starlette's
``JSONResponse`` would be, byte for byte; its query (:func:`asyncrpc.gateway.query.arguments`)
is what ``parse_qsl`` reads; a kept browser-guard verdict is the guard's; a patient
create's attempt with no bound of its own is still bounded where the inner network's
bound comes too late.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qsl

import pytest
from resonate.error import ConnectorError
from starlette.responses import JSONResponse

from asyncrpc.gateway import query
from asyncrpc.gateway.app import (
    KEPT_REFUSALS,
    FlowReply,
    GatewayApp,
    create_api,
    json_body,
    message_body,
)
from asyncrpc.gateway.settings import GatewaySettings
from asyncrpc.network.start_channel import StartChannel
from tests.support.gateway import local_client

SETTINGS = GatewaySettings(server_url="http://127.0.0.1:1", gateway_id="gateway-answers")

VALUES: list[Any] = [
    3,
    0,
    -7,
    10**30,
    True,
    False,
    None,
    1.5,
    1e-9,
    "3",
    'naïve ☃ "quoted" \\ \n',
    [1, "a", None],
    {"nested": {"b": [1.25, "x"]}, "k": 2},
    {1: "int key"},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_flow_answer_is_the_json_response_it_stands_for(value: Any) -> None:
    headers = {"X-Invocation-Id": "order-42", "X-Invocation-Reattached": "false"}
    expected = JSONResponse({"message": value}, headers=headers)
    raw = [(b"x-invocation-id", b"order-42"), (b"x-invocation-reattached", b"false")]
    reply = FlowReply(message_body(value), raw)
    assert (reply.status_code, reply.raw_headers, reply.body) == (
        expected.status_code,
        expected.raw_headers,
        expected.body,
    )


def test_a_pending_answer_is_the_json_response_it_stands_for() -> None:
    content = {"id": "order-42", "state": "pending", "location": "/invocations/order-42"}
    headers = {"X-Invocation-Id": "order-42", "Location": "/invocations/order-42"}
    expected = JSONResponse(content, status_code=202, headers=headers)
    raw = [(b"x-invocation-id", b"order-42"), (b"location", b"/invocations/order-42")]
    reply = FlowReply(json_body(content), raw, 202)
    assert (reply.status_code, reply.raw_headers, reply.body) == (
        expected.status_code,
        expected.raw_headers,
        expected.body,
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_what_json_response_refuses_a_flow_answer_refuses(value: float) -> None:
    with pytest.raises(ValueError):
        JSONResponse({"message": value})
    with pytest.raises(ValueError):
        message_body(value)


QUERIES = [
    b"id=order-42",
    b"id",
    b"id=",
    b"=x",
    b"=",
    b"id=a=b",
    b"id=a;b",
    b"wait=0",
    b"id=a&wait=1",
    b"id=a&id=b",
    b"id=a%20b",
    b"id=a+b",
    b"a%3Db=c",
    b"&&id=x&",
    b"id=\xe9",
    b"id=a&",
]


@pytest.mark.parametrize("sent", QUERIES, ids=repr)
def test_the_query_is_read_as_parse_qsl_reads_it(sent: bytes) -> None:
    expected = dict(parse_qsl(sent.decode("latin-1"), keep_blank_values=True))
    assert query.arguments(sent) == expected


class Silent:
    """A request channel that never answers (a server that took the request and hangs)."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def create(promise_id: str) -> str:
    data = {"id": promise_id, "timeoutAt": 10**15, "param": {}, "tags": {}}
    return json.dumps({"kind": "promise.create", "head": {"corrId": "c-1"}, "data": data})


def test_a_patient_create_is_bounded_by_its_patience_below_the_inner_bound() -> None:
    """With less time left than the inner network's bound, the attempt bounds itself."""

    async def main() -> tuple[float, str]:
        channel = StartChannel(Silent(), unwinds_at_once=True, inner_timeout=30.0)  # type: ignore[arg-type]
        began = time.monotonic()
        with pytest.raises(ConnectorError) as raised:
            await channel.send_start([create("p-1")], None, patience=0.3)
        return time.monotonic() - began, str(raised.value.error)

    took, why = asyncio.run(asyncio.wait_for(main(), 10))
    assert 0.3 <= took < 2.0
    assert "within 0.3s" in why


HEADER_SETS: list[list[tuple[bytes, bytes]]] = [
    [(b"host", b"127.0.0.1:5000")],
    [(b"host", b"evil.test:5000")],
    [(b"host", b"127.0.0.1:5000"), (b"origin", b"http://evil.test")],
    [(b"host", b"127.0.0.1:5000"), (b"sec-fetch-site", b"cross-site")],
    [(b"host", b"localhost:5000"), (b"content-type", b"text/plain")],
    [(b"host", b"127.0.0.1:5000"), (b"origin", b"http://127.0.0.1:5000")],
]


def test_a_kept_verdict_is_the_guards_own_every_time() -> None:
    app = GatewayApp(create_api(SETTINGS, local_client()), {})
    for _ in range(3):
        for headers in HEADER_SETS:
            refusal = app.guard.refusal(headers)
            answer = app.refusal(list(headers))
            if refusal is None:
                assert answer is None
            else:
                assert answer is not None
                assert answer.status_code == refusal.status
                assert json.loads(answer.body) == {"error": refusal.reason}


def test_the_kept_verdicts_stay_few() -> None:
    app = GatewayApp(create_api(SETTINGS, local_client()), {})
    for n in range(3 * KEPT_REFUSALS):
        assert app.refusal([(b"host", b"127.0.0.1:5000"), (b"x-n", str(n).encode())]) is None
    assert len(app._refusals) <= KEPT_REFUSALS
