"""The server speaks the protocol as resonate.sql defines it: statuses, shapes, versions, timers.

Driven in-process through the engine (``Engine.handle`` and ``Engine.tick``)
on a fake clock, so timers fire without sleeping.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from asyncrpc.server.engine import Engine
from asyncrpc.server.router import Stream
from asyncrpc.server.store import Store
from tests.support.server import FAR, promise_of

START = 1_700_000_040_000  # a whole minute, UTC
TARGET = "poll://any@g"
#: A value with no data: fields without a value are left out (the TypeScript SDK rejects null).
PENDING_VALUE = {"headers": {}}


class Server:
    """One engine on a fake clock, and helpers to talk to it."""

    def __init__(self) -> None:
        self.now = START
        # The stream stands in for a worker that acquires only when a test says so, so
        # the router must not give up on it for leaving an execute unacquired.
        self.engine = Engine(Store(":memory:"), clock=lambda: self.now, ack_timeout_ms=10**12)
        self.stream: Stream = self.engine.router.connect("g", "w")

    def raw(self, kind: str, head: dict[str, Any] | None = None, **data: Any) -> dict[str, Any]:
        body = {"kind": kind, "head": {"corrId": "c"} if head is None else head, "data": data}
        reply = self.engine.handle(msgspec.json.encode(body))
        answer = msgspec.json.decode(reply.body)
        assert answer["head"]["status"] == reply.status
        return answer

    def send(self, kind: str, **data: Any) -> tuple[int, Any]:
        answer = self.raw(kind, **data)
        return answer["head"]["status"], answer["data"]

    def advance(self, ms: int) -> None:
        self.now += ms
        self.engine.tick()

    def pushed(self) -> list[dict[str, Any]]:
        queue = self.stream.queue
        return [msgspec.json.decode(queue.get_nowait().body) for _ in range(queue.qsize())]

    def create(self, promise_id: str, timeout: int = FAR, **tags: str) -> dict[str, Any]:
        status, data = self.send("promise.create", id=promise_id, timeoutAt=timeout, tags=tags)
        assert status == 200, data
        return data["promise"]

    def task(self, promise_id: str, timeout: int = FAR, **tags: str) -> dict[str, Any]:
        """A promise with a task, acquired: returns the task record (version 1)."""
        self.create(promise_id, timeout, **{"resonate:target": TARGET, **tags})
        status, data = self.send("task.acquire", id=promise_id, version=0, pid="w", ttl=10_000)
        assert status == 200, data
        return data["task"]

    def suspend(self, task_id: str, version: int, *awaited: str) -> tuple[int, Any]:
        actions = [
            {"kind": "promise.register_callback", "head": {}, "data": {"awaited": a}}
            for a in awaited
        ]
        return self.send("task.suspend", id=task_id, version=version, actions=actions)


@pytest.fixture
def server() -> Server:
    return Server()


def execute(task_id: str, version: int) -> dict[str, Any]:
    return {"kind": "execute", "head": {}, "data": {"task": {"id": task_id, "version": version}}}


# ── envelopes ──────────────────────────────────────────────────────────────────


def test_create_answers_200_new_or_existing_with_the_official_record(server: Server) -> None:
    first = server.raw("promise.create", id="p", timeoutAt=FAR, param={"data": "eA=="})
    again = server.raw("promise.create", id="p", timeoutAt=FAR)
    assert first["head"]["status"] == again["head"]["status"] == 200
    assert first["data"]["promise"] == {
        "id": "p",
        "state": "pending",
        "param": {"headers": {}, "data": "eA=="},
        "value": PENDING_VALUE,
        "tags": {},
        "timeoutAt": FAR,
        "createdAt": START,
    }
    assert again["data"] == first["data"]


def test_create_without_a_timeout_is_a_bad_request(server: Server) -> None:
    answer = server.raw("promise.create", id="p")
    assert answer == {
        "kind": "promise.create",
        "head": {"corrId": "c", "status": 400, "version": "1"},
        "data": "bad request",
    }


def test_head_version_and_corr_id_are_echoed_as_text(server: Server) -> None:
    answer = server.raw("promise.get", head={"corrId": 7, "version": "2"}, id="nope")
    assert answer["head"] == {"corrId": "7", "status": 404, "version": "2"}
    assert answer["data"] == "not found"


@pytest.mark.parametrize("kind", ["promise.explode", "schedule.explode"])
def test_an_unknown_kind_is_501_echoing_the_kind(server: Server, kind: str) -> None:
    answer = server.raw(kind, id="p")
    assert answer["kind"] == kind
    assert answer["head"]["status"] == 501
    assert answer["data"] == "not implemented"


def test_error_data_is_the_status_in_words(server: Server) -> None:
    server.task("t")
    assert server.send("promise.settle", id="t", state="maybe") == (400, "bad request")
    assert server.send("promise.get", id="none") == (404, "not found")
    assert server.send("task.acquire", id="t", version=0, pid="w", ttl=1) == (409, "conflict")
    assert server.suspend("t", 1, "none") == (422, "unprocessable entity")


def test_a_timer_created_already_due_is_born_resolved(server: Server) -> None:
    promise = server.create("late", START - 5, **{"resonate:timer": "true"})
    assert promise["state"] == "resolved"
    assert promise["createdAt"] == promise["settledAt"] == START - 5


# ── task versions ──────────────────────────────────────────────────────────────


def test_execute_carries_the_version_that_acquire_must_present(server: Server) -> None:
    server.create("t", **{"resonate:target": TARGET})
    assert server.pushed() == [execute("t", 0)]
    assert server.send("task.acquire", id="t", version=3, pid="w", ttl=1000)[0] == 409
    status, data = server.send("task.acquire", id="t", version=0, pid="w", ttl=1000)
    assert status == 200
    assert data["task"] == {
        "id": "t",
        "state": "acquired",
        "version": 1,
        "resumes": 0,
        "ttl": 1000,
        "pid": "w",
    }
    assert data["promise"]["id"] == "t"
    assert data["preload"] == []


@pytest.mark.parametrize("kind", ["task.release", "task.fulfill", "task.suspend", "task.fence"])
def test_lease_holding_kinds_check_the_version(server: Server, kind: str) -> None:
    server.task("t")
    server.create("other", **{"resonate:target": TARGET})
    data: dict[str, Any] = {
        "task.release": {},
        "task.fulfill": {"action": {"kind": "promise.settle", "data": {"state": "resolved"}}},
        "task.suspend": {"actions": [{"data": {"awaited": "other"}}]},
        "task.fence": {"action": {"kind": "promise.create", "data": {"id": "c", "timeoutAt": FAR}}},
    }[kind]
    assert server.send(kind, id="t", version=0, **data) == (409, "conflict")
    assert server.send(kind, id="t", version=1, **data)[0] == 200


def test_release_sends_the_task_again_at_its_version(server: Server) -> None:
    server.task("t")
    server.pushed()
    assert server.send("task.release", id="t", version=1) == (200, {})
    assert server.pushed() == [execute("t", 1)]
    assert (
        server.send("task.acquire", id="t", version=1, pid="w2", ttl=10)[1]["task"]["version"] == 2
    )


def test_heartbeat_extends_only_the_lease_of_the_right_version_and_pid(server: Server) -> None:
    server.task("t")  # ttl 10 s
    server.advance(8_000)
    refs = [{"id": "t", "version": 1}]
    assert server.send("task.heartbeat", pid="someone-else", tasks=refs) == (200, {})
    assert server.send("task.heartbeat", pid="w", tasks=[{"id": "t", "version": 0}])[0] == 200
    server.advance(2_000)  # the lease ran out: nobody extended it
    assert server.send("task.get", id="t")[1]["task"]["state"] == "pending"

    server.task("u")
    server.advance(8_000)
    server.send("task.heartbeat", pid="w", tasks=[{"id": "u", "version": 1}])
    server.advance(9_000)
    assert server.send("task.get", id="u")[1]["task"]["state"] == "acquired"


def test_fulfill_with_an_unknown_state_is_a_bad_request(server: Server) -> None:
    server.task("t")
    action = {"kind": "promise.settle", "data": {"state": "pending"}}
    assert server.send("task.fulfill", id="t", version=1, action=action) == (400, "bad request")


def test_fulfill_settles_the_promise_and_answers_it(server: Server) -> None:
    server.task("t")
    action = {"kind": "promise.settle", "data": {"state": "resolved", "value": {"data": "Mw=="}}}
    status, data = server.send("task.fulfill", id="t", version=1, action=action)
    assert status == 200
    assert data["promise"]["state"] == "resolved"
    assert data["promise"]["value"] == {"headers": {}, "data": "Mw=="}
    assert data["promise"]["settledAt"] == START
    task = server.send("task.get", id="t")[1]["task"]
    assert task == {"id": "t", "state": "fulfilled", "version": 1, "resumes": 0}


# ── fence ──────────────────────────────────────────────────────────────────────


def test_fence_answers_a_full_envelope(server: Server) -> None:
    server.task("t")
    action = {
        "kind": "promise.create",
        "head": {},
        "data": {"id": "t.1", "timeoutAt": FAR, "tags": {"resonate:target": TARGET}},
    }
    answer = server.raw(
        "task.fence", head={"corrId": "x", "version": "v"}, id="t", version=1, action=action
    )
    assert answer["head"] == {"corrId": "x", "status": 200, "version": "v"}
    inner = answer["data"]["action"]
    assert inner["kind"] == "promise.create"
    assert inner["head"] == {"corrId": "x", "status": 200, "version": "v"}
    assert inner["data"]["promise"]["id"] == "t.1"
    assert answer["data"]["preload"] == []
    assert server.pushed()[-1] == execute("t.1", 0)
    # a failing inner request is the inner envelope's status, the fence itself succeeds
    settle = {"kind": "promise.settle", "data": {"id": "nope", "state": "resolved"}}
    status, data = server.send("task.fence", id="t", version=1, action=settle)
    assert status == 200
    assert data["action"]["head"]["status"] == 404 and data["action"]["data"] == "not found"


def test_fence_on_its_own_promise_is_a_bad_request(server: Server) -> None:
    server.task("t")
    settle = {"kind": "promise.settle", "data": {"id": "t", "state": "resolved"}}
    assert server.send("task.fence", id="t", version=1, action=settle) == (400, "bad request")


# ── suspend ────────────────────────────────────────────────────────────────────


def test_suspend_input_checks(server: Server) -> None:
    server.task("t")
    server.create("child", **{"resonate:target": TARGET})
    server.create("internal")
    assert server.suspend("t", 1) == (400, "bad request")
    assert server.suspend("t", 1, "t")[0] == 400
    assert server.suspend("t", 1, "child", "child")[0] == 400
    assert server.suspend("t", 1, "missing")[0] == 422
    assert server.suspend("t", 1, "internal")[0] == 422
    assert server.suspend("t", 1, "child") == (200, {"preload": []})
    assert server.send("task.get", id="t")[1]["task"]["state"] == "suspended"


def test_suspend_on_a_settled_promise_redirects_with_300(server: Server) -> None:
    server.task("t")
    server.create("done", **{"resonate:external": "true"})
    server.send("promise.settle", id="done", state="resolved")
    status, data = server.suspend("t", 1, "done")
    assert status == 300
    # the settled awaited promise comes along, so the run goes on without asking for it
    assert [(r["id"], r["state"]) for r in data["preload"]] == [("done", "resolved")]
    assert server.send("task.get", id="t")[1]["task"]["state"] == "acquired"


def test_settling_an_awaited_promise_resumes_the_task_with_resumes(server: Server) -> None:
    server.task("t")
    server.create("a", **{"resonate:external": "true"})
    server.create("b", **{"resonate:external": "true"})
    assert server.suspend("t", 1, "a", "b")[0] == 200
    server.pushed()
    server.send("promise.settle", id="a", state="resolved")
    assert server.pushed() == [execute("t", 1)]
    task = server.send("task.get", id="t")[1]["task"]
    assert (task["state"], task["resumes"]) == ("pending", 1)
    # the callback on b is gone with the resume: settling it does not send t again
    acquired = server.send("task.acquire", id="t", version=1, pid="w", ttl=1000)[1]
    assert acquired["task"]["resumes"] == 0
    # the promise that resumed it is preloaded (a replay need not ask for it); b is open
    assert [(r["id"], r["state"]) for r in acquired["preload"]] == [("a", "resolved")]
    server.send("promise.settle", id="b", state="resolved")
    assert server.pushed() == []


# ── listeners and callbacks ───────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("poll://uni@client/c1", 200),
        ("poll://any@client", 200),
        ("http://127.0.0.1:9/hook", 200),
        ("https://example.invalid/hook", 200),
        ("poll://no-at-sign", 400),
        ("bogus", 400),
        ("", 400),
    ],
)
def test_listener_addresses(server: Server, address: str, status: int) -> None:
    server.create("p")
    assert server.send("promise.register_listener", awaited="p", address=address)[0] == status


def test_register_callback_checks(server: Server) -> None:
    server.create("task", **{"resonate:target": TARGET})
    server.create("timer", START + 100, **{"resonate:timer": "true"})
    server.create("plain")
    callback = "promise.register_callback"
    assert server.send(callback, awaited="task", awaiter="task")[0] == 400
    assert server.send(callback, awaited="missing", awaiter="task")[0] == 404
    assert server.send(callback, awaited="timer", awaiter="plain")[0] == 422
    assert server.send(callback, awaited="plain", awaiter="task")[0] == 422
    status, data = server.send(callback, awaited="timer", awaiter="task")
    assert status == 200 and data["promise"]["id"] == "timer"


# ── timers ─────────────────────────────────────────────────────────────────────


def test_external_and_timer_promises_time_out_and_wake_their_awaiters(server: Server) -> None:
    server.task("sleeper")
    server.create("nap", START + 1_000, **{"resonate:timer": "true", "resonate:target": TARGET})
    server.create("ext", START + 2_000, **{"resonate:external": "true"})
    server.create("internal", START + 1_000)
    server.send("promise.register_listener", awaited="ext", address="poll://uni@g/w")
    assert server.suspend("sleeper", 1, "nap")[0] == 200
    server.pushed()

    server.advance(1_000)
    nap = promise_of(server.engine, "nap")
    assert (nap.state, nap.settled_at) == ("resolved", START + 1_000)
    assert execute("sleeper", 1) in server.pushed()
    # an internal promise is never settled by the timer loop, but reads as timed out
    assert server.engine.state.promises["internal"].state == "pending"
    assert server.send("promise.get", id="internal")[1]["promise"]["state"] == "rejected_timedout"

    server.advance(1_000)
    assert promise_of(server.engine, "ext").state == "rejected_timedout"
    unblock = server.pushed()
    assert unblock[0]["kind"] == "unblock" and unblock[0]["head"] == {}
    assert unblock[0]["data"]["promise"]["state"] == "rejected_timedout"


def test_an_expired_lease_and_the_retry_send_the_task_again(server: Server) -> None:
    server.task("t")  # ttl 10 s
    server.pushed()
    server.advance(9_999)
    assert server.pushed() == []
    server.advance(1)
    assert server.pushed() == [execute("t", 1)]
    assert "pid" not in server.send("task.get", id="t")[1]["task"]
    server.advance(4_999)
    assert server.pushed() == []
    server.advance(1)  # nobody took it within the retry timeout (5 s)
    assert server.pushed() == [execute("t", 1)]


def test_halt_and_continue(server: Server) -> None:
    server.task("t")
    server.pushed()
    assert server.send("task.halt", id="t") == (200, {})
    assert server.send("task.halt", id="t") == (200, {})
    assert server.send("task.continue", id="nope")[0] == 404
    server.advance(60_000)
    assert server.pushed() == []  # a halted task is never retried
    assert server.send("task.continue", id="t") == (200, {})
    assert server.pushed() == [execute("t", 1)]
    assert server.send("task.continue", id="t")[0] == 409
    server.send("promise.settle", id="t", state="resolved")
    assert server.send("task.halt", id="t")[0] == 409


# ── schedules ──────────────────────────────────────────────────────────────────


def test_a_schedule_fires_creates_its_promise_and_advances(server: Server) -> None:
    status, data = server.send(
        "schedule.create",
        id="every2",
        cron="*/2 * * * *",
        promiseId="run-{{.id}}-{{.timestamp}}",
        promiseTimeout=30_000,
        promiseParam={"data": "eA=="},
        promiseTags={"resonate:target": TARGET},
    )
    assert status == 200
    schedule = data["schedule"]
    first_run = START + 120_000 - START % 120_000
    assert schedule["nextRunAt"] == first_run
    assert "lastRunAt" not in schedule
    assert schedule["promiseParam"] == {"headers": {}, "data": "eA=="}
    assert (
        server.send("schedule.create", id="every2", cron="bad", promiseId="x", promiseTimeout=1)[1]
        == data
    )
    server.pushed()

    server.now = first_run
    server.engine.tick()
    run = f"run-every2-{first_run}"
    status, data = server.send("promise.get", id=run)
    assert status == 200
    assert data["promise"]["tags"] == {"resonate:target": TARGET}
    assert data["promise"]["timeoutAt"] == first_run + 30_000
    assert data["promise"]["param"]["data"] == "eA=="
    assert server.pushed() == [execute(run, 0)]
    after = server.send("schedule.get", id="every2")[1]["schedule"]
    assert (after["lastRunAt"], after["nextRunAt"]) == (first_run, first_run + 120_000)

    assert server.send("schedule.delete", id="every2") == (200, {})
    assert server.send("schedule.delete", id="every2")[0] == 404
    server.now = first_run + 120_000
    server.engine.tick()
    assert server.send("promise.get", id=f"run-every2-{first_run + 120_000}")[0] == 404


def test_a_late_tick_fires_every_missed_run(server: Server) -> None:
    server.send(
        "schedule.create", id="m", cron="* * * * *", promiseId="m{{.timestamp}}", promiseTimeout=1
    )
    server.advance(5 * 60_000)
    runs = server.send("promise.search", idPrefix="m")[1]["promises"]
    assert [r["id"] for r in runs] == [f"m{START + i * 60_000}" for i in range(1, 6)]


@pytest.mark.parametrize("cron", ["bad", "* * * *", "61 * * * *", "MON * * * *", "*/0 * * * *"])
def test_schedule_create_refuses_a_bad_cron(server: Server, cron: str) -> None:
    answer = server.send("schedule.create", id="s", cron=cron, promiseId="p", promiseTimeout=1)
    assert answer == (400, "bad request")


def test_schedule_create_needs_its_fields(server: Server) -> None:
    assert server.send("schedule.create", id="s", cron="* * * * *", promiseId="p")[0] == 400


def test_no_answer_or_message_holds_a_null(server: Server) -> None:
    """The TypeScript SDK rejects a null field: a field without a value is left out."""
    answers = [
        server.raw("promise.create", id="p", timeoutAt=FAR, tags={"resonate:target": TARGET}),
        server.raw("task.acquire", id="p", version=0, pid="w", ttl=1000),
        server.raw("task.release", id="p", version=1),
        server.raw("task.get", id="p"),
        server.raw("promise.settle", id="p", state="resolved"),
        server.raw("task.get", id="p"),
        server.raw("promise.search", idPrefix="p"),
        server.raw("schedule.create", id="s", cron="* * * * *", promiseId="x", promiseTimeout=1),
        server.raw("promise.get", id="missing"),
    ]
    for answer in [*answers, *server.pushed()]:
        assert b"null" not in msgspec.json.encode(answer), answer


def test_promise_search_by_origin_state_and_prefix(server: Server) -> None:
    origin = {"resonate:origin": "root"}
    server.create("root", **origin)
    server.create("root.1", START + 10, **origin)
    server.create("root.2", **origin)
    server.create("other", **{"resonate:origin": "elsewhere"})
    server.send("promise.settle", id="root.2", state="resolved")
    server.now += 10  # root.1 is past its timeout: it reads (and is found) as timed out

    def ids(**query: Any) -> list[str]:
        status, data = server.send("promise.search", **query)
        assert status == 200, data
        return [record["id"] for record in data["promises"]]

    assert ids(tags=origin) == ["root", "root.1", "root.2"]
    assert ids(tags=origin, state="pending") == ["root"]
    assert ids(tags=origin, state="rejected_timedout") == ["root.1"]
    assert ids(tags=origin, idPrefix="root.") == ["root.1", "root.2"]
    assert ids(state="resolved") == ["root.2"]
    assert ids(tags={"resonate:origin": "nobody"}) == []
    assert server.send("promise.search", state="done") == (400, "bad request")


def test_a_resume_preloads_the_awaited_promise_from_the_history(server: Server) -> None:
    """A settled child moves to the history on disk; the resumed acquire still carries it."""
    server.task("t")
    server.create("child", **{"resonate:target": "poll://any@other"})
    assert server.suspend("t", 1, "child")[0] == 200
    server.send("task.acquire", id="child", version=0, pid="o", ttl=1000)
    assert (
        server.send(
            "task.fulfill",
            id="child",
            version=1,
            action={"data": {"state": "resolved", "value": {"data": "ok"}}},
        )[0]
        == 200
    )
    server.engine.state.evict(["child"])
    assert "child" not in server.engine.state.promises
    acquired = server.send("task.acquire", id="t", version=1, pid="w", ttl=1000)[1]
    assert [(r["id"], r["value"].get("data")) for r in acquired["preload"]] == [("child", "ok")]
    # the next acquire is no resume: nothing awaited rides along
    server.send("task.release", id="t", version=2)
    again = server.send("task.acquire", id="t", version=2, pid="w", ttl=1000)[1]
    assert again["preload"] == []
