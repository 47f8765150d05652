"""A node answers its SDK's acquire from the lease its execute carried, without a request."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from asyncrpc.network.leases import KeptLeases, LeasedNetwork, Leases, take_carried

TTL_S = 5.0
ACQUIRED = {
    "task": {"id": "t", "state": "acquired", "version": 1, "resumes": 0, "ttl": 5000, "pid": "p"},
    "promise": {"id": "t", "state": "pending", "param": {"headers": {}}, "value": {"headers": {}}},
    "preload": [],
}
CARRIED = json.dumps(
    {
        "kind": "execute",
        "head": {},
        "data": {"task": {"id": "t", "version": 0}},
        "acquired": ACQUIRED,
    },
    separators=(",", ":"),
)


def acquire(corr_id: str = "c-7", version: int = 0, ttl: int = 5000, pid: str = "p") -> str:
    """The SDK's ``task.acquire``, as msgspec writes it."""
    data = {"id": "t", "version": version, "pid": pid, "ttl": ttl}
    envelope = {"kind": "task.acquire", "head": {"corrId": corr_id, "version": "1"}, "data": data}
    return json.dumps(envelope, separators=(",", ":"))


class Inner:
    """The request channel behind: what reached it, answered 409 as the server would."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        self.sent.append(req)
        return '{"kind":"task.acquire","head":{"corrId":"c-7","status":409},"data":"conflict"}'


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def kept_leases(clock: Clock | None = None) -> KeptLeases:
    kept = KeptLeases("p", clock or Clock())
    kept.take(Leases.for_ttl(TTL_S, lambda: 8))
    return kept


def test_the_sdk_gets_the_plain_execute_and_its_acquire_is_answered_at_once() -> None:
    kept = kept_leases()
    inner = Inner()
    network = LeasedNetwork(inner, kept)
    message = take_carried(CARRIED, kept)
    assert json.loads(message) == {
        "kind": "execute",
        "head": {},
        "data": {"task": {"id": "t", "version": 0}},
    }
    answer = json.loads(asyncio.run(network.send(acquire())))
    assert answer == {
        "kind": "task.acquire",
        "head": {"corrId": "c-7", "status": 200, "version": "1"},
        "data": ACQUIRED,
    }
    assert inner.sent == []
    # Answered once: the same acquire again goes to the server, which refuses it.
    asyncio.run(network.send(acquire()))
    assert len(inner.sent) == 1


@pytest.mark.parametrize(
    "message",
    [
        '{"kind":"execute","head":{},"data":{"task":{"id":"t","version":0}}}',
        '{"kind":"unblock","head":{},"data":{"promise":{"id":"\\"acquired\\":"}}}',
        '{"kind":"execute","acquired":',
    ],
)
def test_a_message_that_carries_no_lease_goes_to_the_sdk_as_it_came(message: str) -> None:
    kept = kept_leases()
    assert take_carried(message, kept) == message
    assert len(kept) == 0


def test_a_node_that_takes_no_leases_keeps_none() -> None:
    kept = KeptLeases("p")
    assert take_carried(CARRIED, kept) == CARRIED
    assert len(kept) == 0 and kept.answer(acquire()) is None


def test_an_answer_the_sdk_asks_for_too_late_is_not_given(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    kept = kept_leases(clock)
    take_carried(CARRIED, kept)
    clock.now += TTL_S / 4 + 0.001
    with caplog.at_level(logging.INFO):
        assert kept.answer(acquire()) is None
    assert "went unused" in caplog.text


def test_an_acquire_for_another_lease_stops_the_taking() -> None:
    kept = kept_leases()
    take_carried(CARRIED, kept)
    assert kept.answer(acquire(ttl=60_000)) is None
    assert kept.leases is None and len(kept) == 0
    assert take_carried(CARRIED, kept) == CARRIED  # from now on, as it came


def test_the_room_left_counts_the_answers_kept() -> None:
    clock = Clock()
    kept = kept_leases(clock)
    take_carried(CARRIED, kept)
    assert kept.room() == 7
    clock.now += TTL_S  # past its time: dropped, its lease lapses
    assert kept.room() == 8 and len(kept) == 0
