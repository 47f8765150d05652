"""`schedule.search` as Resonate's server answers it, and `task.acquisitions`, our extension.

Driven in-process through the engine on a fake clock (the protocol tests' server).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_server_protocol import TARGET, Server


@pytest.fixture
def server() -> Server:
    return Server()


def schedule(server: Server, schedule_id: str, **tags: str) -> None:
    status, data = server.send(
        "schedule.create",
        id=schedule_id,
        cron="*/5 * * * *",
        promiseId="{{.id}}.{{.timestamp}}",
        promiseTimeout=60_000,
        promiseTags=tags,
    )
    assert status == 200, data


def ids(data: dict[str, Any]) -> list[str]:
    return [record["id"] for record in data["schedules"]]


def test_every_schedule_is_found_sorted_by_id_in_the_records_shape(server: Server) -> None:
    for name in ("nightly-b", "nightly-a", "hourly"):
        schedule(server, name, **{"resonate:target": TARGET})
    status, data = server.send("schedule.search")
    assert status == 200
    assert ids(data) == ["hourly", "nightly-a", "nightly-b"]
    assert "cursor" not in data  # one page: no cursor, as a search's last page
    _, got = server.send("schedule.get", id="hourly")
    assert data["schedules"][0] == got["schedule"]


def test_an_id_pattern_has_wildcards(server: Server) -> None:
    for name in ("nightly-a", "nightly-b", "hourly", "a.nightly"):
        schedule(server, name)
    assert ids(server.send("schedule.search", id="nightly-*")[1]) == ["nightly-a", "nightly-b"]
    assert ids(server.send("schedule.search", id="*nightly*")[1]) == [
        "a.nightly",
        "nightly-a",
        "nightly-b",
    ]
    assert ids(server.send("schedule.search", id="hourly")[1]) == ["hourly"]
    assert ids(server.send("schedule.search", id="*")[1]) == sorted(
        ["nightly-a", "nightly-b", "hourly", "a.nightly"]
    )
    assert ids(server.send("schedule.search", id="nothing*")[1]) == []


def test_tags_match_the_promise_tags(server: Server) -> None:
    schedule(server, "s1", **{"resonate:target": TARGET, "team": "ops"})
    schedule(server, "s2", team="dev")
    schedule(server, "s3")
    assert ids(server.send("schedule.search", tags={"team": "ops"})[1]) == ["s1"]
    assert ids(server.send("schedule.search", tags={"resonate:target": TARGET})[1]) == ["s1"]
    assert ids(server.send("schedule.search", tags={"team": "qa"})[1]) == []


def test_a_limit_pages_and_the_cursor_goes_on(server: Server) -> None:
    names = [f"s{n:02}" for n in range(25)]
    for name in reversed(names):
        schedule(server, name)
    status, first = server.send("schedule.search")
    assert status == 200
    assert ids(first) == names[:10]  # 10 by default, as on Resonate's server
    assert first["cursor"] == "s09"
    seen, cursor = ids(first), first["cursor"]
    while cursor is not None:
        _, page = server.send("schedule.search", limit=7, cursor=cursor)
        assert len(page["schedules"]) <= 7
        seen += ids(page)
        cursor = page.get("cursor")
    assert seen == names
    _, exact = server.send("schedule.search", limit=25)
    assert ids(exact) == names and "cursor" not in exact


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"limit": 0}, "'limit' must be from 1 to 1000, got 0"),
        ({"limit": 1001}, "'limit' must be from 1 to 1000, got 1001"),
        ({"limit": "many"}, "limit"),
        ({"tags": ["a"]}, "'tags' must be an object"),
        ({"tags": {"team": 1}}, "must map names to text"),
        ({"id": ["a*"]}, "id"),
    ],
)
def test_bad_input_is_a_400_that_says_why(
    server: Server, data: dict[str, Any], reason: str
) -> None:
    body = {"kind": "schedule.search", "head": {"corrId": "c"}, "data": data}
    import msgspec

    reply = server.engine.handle(msgspec.json.encode(body))
    assert reply.status == 400
    assert msgspec.json.decode(reply.body)["data"] == "bad request"
    assert reply.detail is not None and reason in reply.detail, reply.detail


def test_acquisitions_say_who_took_a_task_and_why(server: Server) -> None:
    server.create("p", **{"resonate:target": TARGET})
    server.create("child", **{"resonate:target": TARGET})
    assert server.send("task.acquisitions", id="p")[0] == 404  # never acquired yet
    server.send("task.acquire", id="p", version=0, pid="w-1", ttl=1_000)
    assert server.suspend("p", 1, "child")[0] == 200
    server.send("promise.settle", id="child", state="resolved")
    server.advance(10)
    server.send("task.acquire", id="p", version=1, pid="w-1", ttl=1_000)  # a resume
    server.advance(1_500)  # w-1 dies holding it: its lease runs out
    server.send("task.acquire", id="p", version=2, pid="w-2", ttl=1_000)  # a takeover
    server.send("task.release", id="p", version=3)
    server.send("task.acquire", id="p", version=3, pid="w-3", ttl=1_000)
    status, data = server.send("task.acquisitions", id="p")
    assert status == 200
    got = [(a["version"], a["pid"], a["cause"], a.get("previous")) for a in data["acquisitions"]]
    assert got == [
        (1, "w-1", "first", None),
        (2, "w-1", "awaited", "w-1"),
        (3, "w-2", "lease", "w-1"),
        (4, "w-3", "release", "w-2"),
    ]
    times = [a["at"] for a in data["acquisitions"]]
    assert times == sorted(times) and times[2] - times[1] >= 1_000
    # Settled, the task keeps its record for the timeline.
    server.send("task.fulfill", id="p", version=4, action={"data": {"state": "resolved"}})
    assert len(server.send("task.acquisitions", id="p")[1]["acquisitions"]) == 4


def test_the_acquisition_record_is_bounded() -> None:
    from asyncrpc.protocol.records import AcquireCause
    from asyncrpc.server.acquisitions import AcquisitionLog

    log = AcquisitionLog(max_tasks=3, per_task=4)
    for version in range(1, 11):
        log.pending("t", AcquireCause.LEASE)
        log.acquired("t", version, f"w-{version}", version)
    kept = log.of("t") or []
    assert [a.version for a in kept] == [1, 8, 9, 10]  # the first, then the latest
    assert kept[0].cause is AcquireCause.FIRST and kept[-1].previous == "w-9"
    for task in ("a", "b", "c"):
        log.acquired(task, 1, "w", 0)
    assert log.of("t") is None and log.of("a") is not None  # the oldest task went first
