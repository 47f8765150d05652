"""Retention: settled invocations are forgotten after ``--retain``, as resonate.sql's gc does."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncrpc.server import retention
from asyncrpc.server.engine import Engine
from asyncrpc.server.retention import RetentionError, parse_retain
from asyncrpc.server.store import Store
from tests.support.server import FAR, Clock, held, send

HOUR = 3_600_000


def invocation(engine: Engine, root: str, settle_root: bool) -> None:
    """A root and one step of it; the step settles, the root only when asked."""
    target = {"resonate:target": "poll://any@g"}
    send(engine, "promise.create", id=root, timeoutAt=FAR, tags={**target, "resonate:origin": root})
    step = f"{root}.1"
    tags = {**target, "resonate:origin": root, "resonate:branch": root}
    send(engine, "promise.create", id=step, timeoutAt=FAR, tags=tags)
    send(engine, "promise.settle", id=step, state="resolved", value={"data": "MQ=="})
    if settle_root:
        send(engine, "promise.settle", id=root, state="resolved", value={"data": "Mw=="})


def test_settled_invocations_older_than_the_retention_go_whole(tmp_path: Path) -> None:
    clock = Clock()
    db = str(tmp_path / "s.db")
    engine = Engine(Store(db), clock=clock, retain_ms=HOUR)
    invocation(engine, "old", settle_root=True)
    invocation(engine, "running", settle_root=False)
    clock.now += HOUR // 2
    invocation(engine, "young", settle_root=True)
    engine.tick()
    assert len(held(engine)) == 6, "nothing is older than the retention yet"
    clock.now += HOUR // 2 + 1
    engine.tick()
    # "old" goes whole; "running"'s settled step stays while its root is pending.
    assert held(engine) == ["running", "running.1", "young", "young.1"]
    assert engine.state.task("old") is None and "old" not in engine.state.by_origin
    assert send(engine, "promise.get", id="old")["head"]["status"] == 404
    assert send(engine, "task.get", id="old")["head"]["status"] == 404
    before = held(engine)
    engine.store.close()  # a crash: the restart replays the log, batch included
    restarted = Engine(Store(db), clock=clock, retain_ms=HOUR)
    assert held(restarted) == before
    assert send(restarted, "promise.get", id="old")["head"]["status"] == 404


def test_a_backlog_goes_in_bounded_batches_one_per_tick(tmp_path: Path) -> None:
    clock = Clock()
    engine = Engine(Store(str(tmp_path / "s.db")), clock=clock, retain_ms=HOUR)
    for i in range(retention.GC_BATCH + 10):
        send(engine, "promise.create", id=f"p{i}", timeoutAt=FAR)
        send(engine, "promise.settle", id=f"p{i}", state="resolved")
    clock.now += 2 * HOUR
    for left in range(retention.GC_BATCH + 10, 0, -retention.GC_BATCH):
        assert len(held(engine)) == left
        engine.tick()
        assert engine.gc_backlog == (left > retention.GC_BATCH)
    assert held(engine) == []


def test_forever_keeps_everything(tmp_path: Path) -> None:
    clock = Clock()
    engine = Engine(Store(":memory:"), clock=clock, retain_ms=parse_retain("forever"))
    invocation(engine, "old", settle_root=True)
    clock.now += 10**12
    engine.tick()
    assert len(held(engine)) == 2


def test_a_client_cannot_send_the_retention_kind() -> None:
    engine = Engine(Store(":memory:"))
    send(engine, "promise.create", id="p", timeoutAt=FAR)
    send(engine, "promise.settle", id="p", state="resolved")
    reply = engine.handle(retention.gc_request(["p"]))
    assert reply.status == 501 and held(engine) == ["p"]


@pytest.mark.parametrize(
    ("text", "ms"), [("7d", 7 * 24 * HOUR), ("12h", 12 * HOUR), ("30m", 1_800_000), ("45s", 45_000)]
)
def test_durations_parse(text: str, ms: int) -> None:
    assert parse_retain(text) == ms


@pytest.mark.parametrize(
    "text", ["0", "0d", "7", "-1d", "1.5h", "nan", "\u0667d", "7 days", "", "9999999d"]
)
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(RetentionError, match="--retain must be"):
        parse_retain(text)
