"""Malformed and random protocol envelopes never get a 5xx from a real server over HTTP.

tests/unit/test_server_fuzz.py sends many more to the engine in-process.
"""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings

from asyncrpc.server.protocol import MAX_DETAIL_CHARS
from harness.processes import Processes
from tests.support.server_fuzz import (
    BOUNDED,
    envelopes,
    kinds,
    scalar_data_with_brackets,
    seed,
    touches_kept,
    unknown_kind,
)


def test_random_envelopes_over_http(procs: Processes) -> None:
    _, url = procs.start_server()
    client = httpx.Client(base_url=url, timeout=10)

    def post(envelope: dict[str, Any]) -> dict[str, Any]:
        return client.post("/", json=envelope).json()

    before = seed(post)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(envelopes())
    def check(body: bytes) -> None:
        if touches_kept(body):
            return
        response = client.post("/", content=body)
        assert response.status_code < 500 or response.status_code == 501, (body, response.text)

    check()
    for promise_id, record in before.items():
        assert (
            post({"kind": "promise.get", "head": {}, "data": {"id": promise_id}})["data"] == record
        )
    assert client.get("/healthz").status_code == 200
    client.close()


def test_deep_and_long_inputs_over_http(procs: Processes) -> None:
    server, url = procs.start_server()
    with httpx.Client(base_url=url, timeout=10) as client:
        for body in BOUNDED:
            response = client.post("/", content=body)
            assert response.status_code == 400, (body[:80], response.text)
            assert response.json()["data"] == "bad request"
            assert response.headers["x-asyncrpc-error"]
        forged = client.get("/poll/g/x%0aERROR%20forged")
        assert forged.status_code == 400
        assert forged.json()["head"]["status"] == 400
        assert "control character" in forged.headers["x-asyncrpc-error"]
        assert client.get(f"/poll/g/{'p' * 600}").status_code == 400
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and "database" not in health
    assert not any(line.startswith("ERROR forged") for line in server.output().splitlines())


def test_these_shapes_over_http(procs: Processes) -> None:
    _, url = procs.start_server()
    with httpx.Client(base_url=url, timeout=30) as client:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(scalar_data_with_brackets())
        def check_brackets(body: bytes) -> None:
            response = client.post("/", content=body)
            assert response.status_code < 500 or response.status_code == 501, response.text
            assert response.json()["head"]["status"] == response.status_code

        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        @given(kinds)
        def check_kinds(kind: str) -> None:
            response = client.post("/", content=unknown_kind(kind))
            assert response.status_code == 501, response.text[:200]
            reason = response.headers["x-asyncrpc-error"]
            assert reason.startswith("unknown request kind") and len(reason) <= MAX_DETAIL_CHARS

        check_brackets()
        check_kinds()
        assert client.get("/healthz").status_code == 200
