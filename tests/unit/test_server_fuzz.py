"""Malformed and random protocol envelopes never get a 5xx from the engine, in this process.

Many examples, fast; tests/e2e/test_server_fuzz.py sends the same to a real
server process over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncrpc.server.engine import Engine
from asyncrpc.server.protocol import FIELDS, MAX_DETAIL_CHARS, detail_header
from asyncrpc.server.store import Store
from tests.support.server_fuzz import (
    BOUNDED,
    edge_envelopes,
    envelopes,
    kinds,
    records,
    scalar_data_with_brackets,
    seed,
    touches_kept,
    unknown_kind,
)


def test_random_envelopes_in_process(tmp_path: Path) -> None:
    db = str(tmp_path / "fuzz.db")
    engine = Engine(Store(db, min_log=200))

    def post(envelope: dict[str, Any]) -> dict[str, Any]:
        return msgspec.json.decode(engine.handle(msgspec.json.encode(envelope)).body)

    before = seed(post)

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(envelopes())
    def check(body: bytes) -> None:
        if touches_kept(body):
            return
        reply = engine.handle(body)
        assert reply.status < 500 or reply.status == 501, (body, reply)
        msgspec.json.decode(reply.body)

    check()
    for promise_id, record in before.items():
        assert (
            post({"kind": "promise.get", "head": {}, "data": {"id": promise_id}})["data"] == record
        )
    # Whatever the requests did, a restart rebuilds exactly the same state.
    before = records(engine)
    engine.store.close()  # as a crash leaves it: no snapshot
    restarted = Engine(Store(db, min_log=200))
    assert records(restarted) == before


def test_edge_shapes_in_process(tmp_path: Path) -> None:
    db = str(tmp_path / "edges.db")
    clock = [1_000_000]
    engine = Engine(Store(db, min_log=200), clock=lambda: clock[0])

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(edge_envelopes(), st.integers(0, 5000))
    def check(body: bytes, later: int) -> None:
        clock[0] += later
        reply = engine.handle(body)
        assert reply.status < 500, (body, reply)
        msgspec.json.decode(reply.body)
        engine.tick()

    check()
    before = records(engine)
    engine.store.close()
    restarted = Engine(Store(db, min_log=200), clock=lambda: clock[0])
    assert records(restarted) == before


def test_deep_and_long_inputs_get_a_400_envelope_in_process() -> None:
    engine = Engine(Store(":memory:"))
    for body in BOUNDED:
        reply = engine.handle(body)
        assert reply.status == 400, (body[:80], reply)
        envelope = msgspec.json.decode(reply.body)
        assert envelope["head"]["status"] == 400 and envelope["data"] == "bad request"
        assert reply.detail
    assert engine.state.promises == {}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(scalar_data_with_brackets())
def test_scalar_data_and_many_brackets_in_process(body: bytes) -> None:
    reply = Engine(Store(":memory:")).handle(body)
    assert reply.status < 500 or reply.status == 501, (body[:120], reply)
    msgspec.json.decode(reply.body)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(kinds)
def test_any_kind_gets_a_bounded_reason_in_process(kind: str) -> None:
    reply = Engine(Store(":memory:")).handle(unknown_kind(kind))
    if kind in FIELDS:
        return
    assert reply.status == 501, reply
    assert reply.detail is not None and "valid kinds" in reply.detail
    header = detail_header(reply.detail)
    assert len(header) <= MAX_DETAIL_CHARS and header.isascii()
    assert header.endswith(reply.detail[-100:].encode())  # what is valid: at its end, whole
