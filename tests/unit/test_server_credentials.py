"""No credential reaches the server's database: the heads' tokens are dropped before the log.

The SDKs send the token in ``head.auth`` of every request and of each action
inside one (``task.create``, ``task.fence``, ``task.fulfill``, ``task.suspend``);
the log keeps request bodies, so they are stored without it, and replay the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from asyncrpc.server.engine import Engine
from asyncrpc.server.protocol import without_credentials
from asyncrpc.server.store import Store
from tests.support.server import promise_of
from tests.support.server_fuzz import records

TOKEN = "tok-9f2c41d7e0b34a6f"
FAR = 10**15


def head(corr_id: str) -> dict[str, str]:
    return {"corrId": corr_id, "version": "1", "auth": TOKEN}


def action(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "head": head("inner"), "data": data}


def requests() -> list[dict[str, Any]]:
    """A task's life as the SDK sends it, with the token in every head."""
    target = {"resonate:target": "poll://any@g"}
    return [
        {
            "kind": "promise.create",
            "head": head("1"),
            "data": {"id": "p", "timeoutAt": FAR, "tags": {"resonate:external": "true"}},
        },
        {
            "kind": "task.create",
            "head": head("2"),
            "data": {
                "pid": "w",
                "ttl": 60_000,
                "action": action("promise.create", {"id": "t", "timeoutAt": FAR, "tags": target}),
            },
        },
        {
            "kind": "task.suspend",
            "head": head("3"),
            "data": {
                "id": "t",
                "version": 1,
                "actions": [action("promise.register_callback", {"awaited": "p", "awaiter": "t"})],
            },
        },
        {
            "kind": "promise.settle",
            "head": {**head("4"), "Authorization": f"Bearer {TOKEN}"},
            "data": {"id": "p", "state": "resolved", "value": {"data": "Mw=="}},
        },
        {
            "kind": "task.acquire",
            "head": head("5"),
            "data": {"id": "t", "version": 1, "pid": "w", "ttl": 60_000},
        },
        {
            "kind": "task.fulfill",
            "head": head("6"),
            "data": {
                "id": "t",
                "version": 2,
                "action": action("promise.settle", {"id": "t", "state": "resolved"}),
            },
        },
    ]


def test_no_token_in_the_database_files_and_the_same_state_after_a_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "server.db"
    engine = Engine(Store(str(db)))
    for request in requests():
        reply = engine.handle(msgspec.json.encode(request))
        assert reply.status in (200, 300), (request["kind"], reply)
    assert promise_of(engine, "t").to_json()["state"] == "resolved"
    files = sorted(tmp_path.iterdir())
    assert [path.name for path in files][:2] == ["server.db", "server.db-wal"]
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path.name
    before = records(engine)
    engine.store.close()  # as a crash leaves it: the log, no snapshot
    restarted = Engine(Store(str(db)))
    assert records(restarted) == before


def test_a_body_without_credentials_is_kept_as_it_came() -> None:
    body = b'{"kind":  "promise.get", "head": {"corrId": "a"}, "data": {"id": "auth"}}'
    assert without_credentials(body) is body
    # "auth" elsewhere than in a head is data: kept.
    data = b'{"kind":"promise.create","head":{},"data":{"id":"x","tags":{"auth":"v"}}}'
    assert without_credentials(data) is data
    stripped = without_credentials(b'{"kind":"k","head":{"auth":"s","corrId":"c"},"data":{}}')
    assert msgspec.json.decode(stripped) == {"kind": "k", "head": {"corrId": "c"}, "data": {}}
