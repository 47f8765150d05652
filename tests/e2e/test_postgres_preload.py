"""``asyncrpc.rpc``, the schema step's request entry point: resonate_rpc with ``preload``.

A resumed task's acquire through it carries the settled promises that resumed
it, which resonate.sql's own answer leaves out (``preload: []``); every other
answer is resonate_rpc's (docs/protocol.md, "preload").
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from resonate_pg.connection import RPC_SQL

from asyncrpc.network.postgres_link import WRAPPED_RPC_SQL
from harness.postgres import ResonateCluster

HOUR = 3_600_000
FAR = 2**50
EXTERNAL = {"resonate:external": "true"}
TARGET = {"resonate:target": "poll://any@service-a"}


@pytest.fixture(scope="module")
def db(resonate_cluster: ResonateCluster) -> Any:
    with psycopg.connect(resonate_cluster.database("preload"), autocommit=True) as conn:
        yield conn


def call(db: Any, sql: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    request = {"kind": kind, "head": {"corrId": kind, "version": "2025-01-15"}, "data": data}
    row = db.execute(sql, (json.dumps(request),)).fetchone()
    answer: dict[str, Any] = json.loads(row[0])
    return answer


def status(db: Any, sql: str, kind: str, data: dict[str, Any]) -> int:
    return int(call(db, sql, kind, data)["head"]["status"])


def resumed(db: Any, sql: str, root: str, child: str) -> dict[str, Any]:
    """``root``'s task suspended on ``child``, ``child`` resolved, then ``root`` acquired."""
    create = {"id": root, "timeoutAt": FAR, "param": {}, "tags": TARGET}
    action = {"kind": "promise.create", "head": {"corrId": "", "version": ""}, "data": create}
    assert status(db, sql, "task.create", {"pid": "a-1", "ttl": HOUR, "action": action}) == 200
    assert (
        status(db, sql, "promise.create", {"id": child, "timeoutAt": FAR, "tags": EXTERNAL}) == 200
    )
    awaited = {
        "kind": "promise.register_callback",
        "head": {"corrId": "", "version": ""},
        "data": {"awaited": child, "awaiter": root},
    }
    suspend = {"id": root, "version": 1, "actions": [awaited]}
    assert status(db, sql, "task.suspend", suspend) == 200
    settle = {"id": child, "state": "resolved", "value": {"headers": {}, "data": "MQ=="}}
    assert status(db, sql, "promise.settle", settle) == 200
    return call(db, sql, "task.acquire", {"id": root, "version": 1, "pid": "a-2", "ttl": HOUR})


def test_an_acquire_of_a_resumed_task_preloads_what_resumed_it(db: Any) -> None:
    ours = resumed(db, WRAPPED_RPC_SQL, "root-ours", "child-ours")
    reference = resumed(db, RPC_SQL, "root-ref", "child-ref")

    assert ours["head"]["status"] == reference["head"]["status"] == 200
    assert reference["data"]["preload"] == []
    [child] = ours["data"]["preload"]
    assert child["id"] == "child-ours" and child["state"] == "resolved"
    assert child["value"]["data"] == "MQ=="
    # Apart from the preload, the same answer as resonate_rpc's.
    assert ours["data"]["task"]["version"] == reference["data"]["task"]["version"] == 2
    assert ours["data"]["promise"]["id"] == "root-ours"


def test_other_answers_are_resonate_rpcs(db: Any) -> None:
    data = {"id": "missing", "version": 0, "pid": "a-1", "ttl": HOUR}
    assert call(db, WRAPPED_RPC_SQL, "task.acquire", data) == call(
        db, RPC_SQL, "task.acquire", data
    )
    first = call(db, WRAPPED_RPC_SQL, "task.acquire", {**data, "id": "root-ours"})
    assert first["head"]["status"] == 409  # acquired already: no preload added to an error
    assert "preload" not in json.dumps(first["data"])
