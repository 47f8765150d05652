"""Stored history, fast: a SQLite file seeded with settled promises through the store's bulk path.

Seeding through HTTP would take minutes at 100k promises; :meth:`Store.import_settled`
writes them in one transaction, so the history benchmark seeds 1M and a test
seeds a few thousand in a moment. Each await chain is a root and two steps with
the tags the SDK writes, settled an hour ago, so the server reads them as the
dashboard's searches and call graphs find them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from resonate.codec import Codec, NoopEncryptor
from resonate.connections.sse import resolve_target

from asyncrpc.lesson import topology
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import BRANCH_TAG, ORIGIN_TAG, PARENT_TAG, TARGET_TAG
from asyncrpc.server.history import Settled
from asyncrpc.server.records import Promise, Value
from asyncrpc.server.store import Store

HOUR_MS = 3_600_000
#: The await chain's nodes, root first: each step's group and function.
STEPS = tuple(topology.NODES[node] for node in topology.FLOWS["await-chain"].nodes)


def encoded(codec: Codec, value: object) -> Value:
    """``value`` as the SDK stores it (base64 JSON)."""
    sdk = codec.encode(value)
    return Value(headers=sdk.headers or {}, data=sdk.data)


def chains(count: int, prefix: str, now_ms: int) -> Iterator[Settled]:
    """``count`` settled promises: await chains (a root and two steps) settled an hour ago."""
    codec = Codec(NoopEncryptor())
    params = [
        encoded(codec, {"func": step.function, "args": [], "kwargs": {}, "version": 1})
        for step in STEPS
    ]
    value = encoded(codec, 3)
    for i in range(count):
        root = f"{prefix}-{i // 3:08d}"
        step = i % 3
        promise_id = root if step == 0 else f"{root}.{step}"
        tags = {
            TARGET_TAG: resolve_target(STEPS[step].group),
            ORIGIN_TAG: root,
            BRANCH_TAG: promise_id,
            PARENT_TAG: root if step == 0 else (root if step == 1 else f"{root}.1"),
            "resonate:scope": "global",
        }
        at = now_ms - HOUR_MS + i
        promise = Promise(
            id=promise_id,
            state=PromiseState.RESOLVED,
            param=params[step],
            value=value,
            tags=tags,
            timeout_at=now_ms + 365 * 24 * HOUR_MS,
            created_at=at,
            settled_at=at + 5,
        )
        yield Settled(promise, 1)


def seed(db: Path, count: int, prefix: str) -> float:
    """Store ``count`` settled promises in ``db`` through the bulk path; the seconds it took."""
    began = time.monotonic()
    store = Store(str(db))
    try:
        store.import_settled(chains(count, prefix, time.time_ns() // 1_000_000))
    finally:
        store.close()
    return time.monotonic() - began
