"""The conformance scenarios: request sequences with what resonate.sql answers to each.

Each function writes one scenario on a :class:`Script`. The expectations
(``status=``, ``data__promise=`` ...) were written from reading resonate.sql
and are checked against it; the suite then checks that our server's answers
equal the reference's, message for message. Times are offsets from ``T0``.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.script import (
    ANY_STRING,
    HOUR,
    MINUTE,
    SECOND,
    T0,
    VERSION,
    Scenario,
    Script,
    without_nulls,
)

#: A worker group's "any member" address (a task's target) and a second one.
A = "poll://any@service-a"
B = "poll://any@service-b"
#: One process's own address (where a listener waits for a promise).
GW = "poll://uni@gateway/gw-1"
#: What error answers carry: a short text.
ERROR = ANY_STRING
PARAM = {"headers": {"h": "v"}, "data": "eyJmdW5jIjogImJheiJ9"}
VALUE = {"headers": {}, "data": "MQ=="}
EMPTY = {"headers": {}, "data": None}


def record(
    id: str,
    state: str = "pending",
    *,
    timeout: int,
    created: int,
    settled: int | None = None,
    param: dict[str, Any] = EMPTY,
    value: dict[str, Any] = EMPTY,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A promise as resonate.sql shows it."""
    return {
        "id": id,
        "state": state,
        "param": param,
        "value": value,
        "tags": tags or {},
        "timeoutAt": timeout,
        "createdAt": created,
        "settledAt": settled,
    }


def task(
    id: str,
    state: str,
    version: int,
    resumes: int = 0,
    ttl: int | None = None,
    pid: str | None = None,
) -> dict[str, Any]:
    """A task as resonate.sql shows it."""
    return {
        "id": id,
        "state": state,
        "version": version,
        "resumes": resumes,
        "ttl": ttl,
        "pid": pid,
    }


def create_action(id: str, timeout: int, tags: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": id, "timeoutAt": timeout, "param": PARAM, "tags": tags or {}}
    return {"kind": "promise.create", "head": {"corrId": "", "version": VERSION}, "data": data}


def settle_action(id: str, state: str = "resolved") -> dict[str, Any]:
    data = {"id": id, "state": state, "value": VALUE}
    return {"kind": "promise.settle", "head": {"corrId": "", "version": VERSION}, "data": data}


def callback(awaited: str, awaiter: str) -> dict[str, Any]:
    return {
        "kind": "promise.register_callback",
        "head": {"corrId": "", "version": VERSION},
        "data": {"awaited": awaited, "awaiter": awaiter},
    }


def fulfill_action(id: str, state: str = "resolved") -> dict[str, Any]:
    return settle_action(id, state)


def target(address: str = A) -> dict[str, str]:
    return {"resonate:target": address}


def new_task(s: Script, id: str, ttl: int = HOUR, timeout: int = HOUR, tags: Any = None) -> None:
    """task.create: a new promise with its task, acquired at version 1 by ``a-1``."""
    tags = tags or target()
    s.rpc(
        "task.create",
        {"pid": "a-1", "ttl": ttl, "action": create_action(id, s.now + timeout, tags)},
        status=200,
        data__task=task(id, "acquired", 1, ttl=ttl, pid="a-1"),
    )


def pending_task(s: Script, id: str, address: str = A, timeout: int = HOUR) -> None:
    """promise.create with a target: a pending task, announced to ``address`` at version 0."""
    s.rpc(
        "promise.create",
        {"id": id, "timeoutAt": s.now + timeout, "param": PARAM, "tags": target(address)},
        status=200,
    )
    s.messages(f"execute {id} v0 -> {address}")


#: Why a run's acquire (or a suspend's 300) carries the settled promises it runs on because of.
PRELOAD_WHY = (
    "ours preloads the settled promises that resumed the task (docs/protocol.md, preload);"
    " resonate.sql answers preload []"
)


def acquire(
    s: Script, id: str, version: int, pid: str = "a-1", resumed_by: list[Any] | None = None
) -> None:
    """task.acquire at ``version``: the task is ``pid``'s, one version up.

    ``resumed_by``: the records of the settled promises that resumed the task, which
    our server preloads (as it answers every record: without its null fields) and
    resonate.sql does not.
    """
    data = {"id": id, "version": version, "pid": pid, "ttl": HOUR}
    acquired = task(id, "acquired", version + 1, ttl=HOUR, pid=pid)
    if resumed_by is None:
        s.rpc("task.acquire", data, status=200, data__task=acquired)
        return
    s.differs(
        "task.acquire",
        data,
        PRELOAD_WHY,
        reference={"status": 200, "data__task": acquired, "data__preload": []},
        ours={"status": 200, "data__task": acquired, "data__preload": without_nulls(resumed_by)},
    )


def plain_promise(s: Script, id: str, timeout: int = HOUR, tags: Any = None) -> None:
    s.rpc(
        "promise.create", {"id": id, "timeoutAt": s.now + timeout, "tags": tags or {}}, status=200
    )


# -- promises ------------------------------------------------------------------


def promise_create_and_get(s: Script) -> None:
    created = record("p1", timeout=T0 + HOUR, created=T0, param=PARAM, tags={"k": "v"})
    s.rpc(
        "promise.create",
        {"id": "p1", "timeoutAt": T0 + HOUR, "param": PARAM, "tags": {"k": "v"}},
        status=200,
        data__promise=created,
    )
    s.advance(SECOND)
    s.rpc("promise.get", {"id": "p1"}, status=200, data__promise=created)
    s.rpc(
        "promise.create",
        {"id": "p1", "timeoutAt": T0 + 2 * HOUR, "param": VALUE},
        status=200,
        data__promise=created,
    )
    s.rpc(
        "promise.create",
        {"id": "p2", "timeoutAt": T0 + HOUR},
        status=200,
        data__promise=record("p2", timeout=T0 + HOUR, created=T0 + SECOND),
    )


def promise_get_missing(s: Script) -> None:
    s.rpc("promise.get", {"id": "nope"}, status=404, data=ERROR, kind="promise.get")


def promise_create_needs_timeout(s: Script) -> None:
    s.rejects("promise.create", {"id": "p1"}, 400)
    s.rejects("promise.create", {"timeoutAt": T0 + HOUR}, 400)
    s.rpc("promise.get", {"id": "p1"}, status=404)


def promise_create_already_timed_out(s: Script) -> None:
    past = T0 - SECOND
    s.rpc(
        "promise.create",
        {"id": "late", "timeoutAt": past},
        status=200,
        data__promise=record("late", "rejected_timedout", timeout=past, created=past, settled=past),
    )
    timer = {"resonate:timer": "true"}
    s.rpc(
        "promise.create",
        {"id": "timer", "timeoutAt": past, "tags": timer},
        status=200,
        data__promise=record(
            "timer", "resolved", timeout=past, created=past, settled=past, tags=timer
        ),
    )
    s.rpc(
        "promise.create",
        {"id": "job", "timeoutAt": past, "tags": target()},
        status=200,
        data__promise__state="rejected_timedout",
    )
    s.rpc("task.get", {"id": "job"}, status=200, data__task=task("job", "fulfilled", 0))
    s.messages()


def promise_settle_states(s: Script) -> None:
    plain_promise(s, "p1")
    plain_promise(s, "p2")
    plain_promise(s, "p3")
    s.advance(SECOND)
    resolved = record(
        "p1", "resolved", timeout=T0 + HOUR, created=T0, settled=T0 + SECOND, value=VALUE
    )
    s.rpc(
        "promise.settle",
        {"id": "p1", "state": "resolved", "value": VALUE},
        status=200,
        data__promise=resolved,
    )
    s.advance(SECOND)
    s.rpc(
        "promise.settle",
        {"id": "p1", "state": "rejected", "value": EMPTY},
        status=200,
        data__promise=resolved,
    )
    s.rpc("promise.get", {"id": "p1"}, status=200, data__promise=resolved)
    s.rpc(
        "promise.settle",
        {"id": "p2", "state": "rejected"},
        status=200,
        data__promise=record(
            "p2", "rejected", timeout=T0 + HOUR, created=T0, settled=T0 + 2 * SECOND
        ),
    )
    s.rpc(
        "promise.settle",
        {"id": "p3", "state": "rejected_canceled", "value": VALUE},
        status=200,
        data__promise__state="rejected_canceled",
    )


def promise_settle_checks(s: Script) -> None:
    plain_promise(s, "p1")
    for state in ("pending", "rejected_timedout", "done"):
        s.rejects("promise.settle", {"id": "p1", "state": state}, 400)
    s.rejects("promise.settle", {"id": "p1"}, 400)
    s.rejects("promise.settle", {"id": "missing", "state": "bogus"}, 400)
    s.rejects("promise.settle", {"id": "missing", "state": "resolved"}, 404)
    s.rpc("promise.get", {"id": "p1"}, status=200, data__promise__state="pending")


def promise_timeout_seen_on_read(s: Script) -> None:
    plain_promise(s, "p1", timeout=10 * SECOND)
    plain_promise(s, "sleep", timeout=10 * SECOND, tags={"resonate:timer": "true"})
    s.advance(10 * SECOND)
    s.rpc(
        "promise.get",
        {"id": "p1"},
        status=200,
        data__promise=record(
            "p1",
            "rejected_timedout",
            timeout=T0 + 10 * SECOND,
            created=T0,
            settled=T0 + 10 * SECOND,
        ),
    )
    s.rpc(
        "promise.settle",
        {"id": "p1", "state": "resolved", "value": VALUE},
        status=200,
        data__promise__state="rejected_timedout",
        data__promise__value=EMPTY,
    )
    s.rpc(
        "promise.get",
        {"id": "sleep"},
        status=200,
        data__promise__state="resolved",
        data__promise__settledAt=T0 + 10 * SECOND,
    )


# -- listeners and callbacks --------------------------------------------------------


def listener_unblocks_on_settle(s: Script) -> None:
    plain_promise(s, "p1")
    pending = record("p1", timeout=T0 + HOUR, created=T0)
    s.rpc(
        "promise.register_listener",
        {"awaited": "p1", "address": GW},
        status=200,
        data__promise=pending,
    )
    s.rpc("promise.register_listener", {"awaited": "p1", "address": GW}, status=200)
    s.advance(SECOND)
    s.rpc("promise.settle", {"id": "p1", "state": "resolved", "value": VALUE}, status=200)
    s.messages(f"unblock p1 resolved -> {GW}")
    s.rpc(
        "promise.register_listener",
        {"awaited": "p1", "address": GW},
        status=200,
        data__promise__state="resolved",
    )
    s.rpc("promise.settle", {"id": "p1", "state": "rejected"}, status=200)
    s.messages()


def listener_address_checks(s: Script) -> None:
    plain_promise(s, "p1")
    for address in ("gateway", "poll://gateway", "", "tcp://x@y"):
        s.rejects("promise.register_listener", {"awaited": "p1", "address": address}, 400)
    s.rejects("promise.register_listener", {"awaited": "p1"}, 400)
    s.rejects("promise.register_listener", {"awaited": "missing"}, 400)
    s.rejects("promise.register_listener", {"awaited": "missing", "address": GW}, 404)
    s.rpc(
        "promise.register_listener",
        {"awaited": "p1", "address": "http://127.0.0.1:9/hook"},
        status=200,
        data__promise__state="pending",
    )
    s.rpc("promise.register_listener", {"awaited": "p1", "address": GW}, status=200)


def callback_checks(s: Script) -> None:
    pending_task(s, "w")
    plain_promise(s, "ext", tags={"resonate:external": "true"})
    plain_promise(s, "internal")
    s.rejects("promise.register_callback", {"awaited": "w", "awaiter": "w"}, 400)
    s.rejects("promise.register_callback", {"awaited": "missing", "awaiter": "w"}, 404)
    s.rejects("promise.register_callback", {"awaited": "ext", "awaiter": "missing"}, 422)
    s.rejects("promise.register_callback", {"awaited": "ext", "awaiter": "internal"}, 422)
    s.rejects("promise.register_callback", {"awaited": "internal", "awaiter": "w"}, 422)
    s.rpc(
        "promise.register_callback",
        {"awaited": "ext", "awaiter": "w"},
        status=200,
        data__promise=record(
            "ext", timeout=T0 + HOUR, created=T0, tags={"resonate:external": "true"}
        ),
    )


def callback_resumes_running_task(s: Script) -> None:
    pending_task(s, "w")
    s.rpc("task.acquire", {"id": "w", "version": 0, "pid": "a-1", "ttl": HOUR}, status=200)
    pending_task(s, "child", B)
    s.rpc(
        "promise.register_callback",
        {"awaited": "child", "awaiter": "w"},
        status=200,
        data__promise__state="pending",
    )
    s.advance(SECOND)
    s.rpc("promise.settle", {"id": "child", "state": "resolved", "value": VALUE}, status=200)
    s.rpc(
        "task.get",
        {"id": "w"},
        status=200,
        data__task=task("w", "acquired", 1, resumes=1, ttl=HOUR, pid="a-1"),
    )
    s.rpc("task.get", {"id": "child"}, status=200, data__task=task("child", "fulfilled", 0))
    s.messages()
    s.rpc("task.fulfill", {"id": "w", "version": 1, "action": fulfill_action("w")}, status=200)
    s.rpc("task.get", {"id": "w"}, status=200, data__task=task("w", "fulfilled", 1))


# -- tasks -----------------------------------------------------------------------------


def task_create_acquires(s: Script) -> None:
    s.rpc(
        "task.create",
        {"pid": "a-1", "ttl": 30 * SECOND, "action": create_action("t", T0 + HOUR, target())},
        status=200,
        data__task=task("t", "acquired", 1, ttl=30 * SECOND, pid="a-1"),
        data__promise=record("t", timeout=T0 + HOUR, created=T0, param=PARAM, tags=target()),
        data__preload=[],
    )
    s.messages()
    s.rpc(
        "task.get",
        {"id": "t"},
        status=200,
        data__task=task("t", "acquired", 1, ttl=30 * SECOND, pid="a-1"),
    )
    s.rejects(
        "task.create",
        {"pid": "a-2", "ttl": SECOND, "action": create_action("t", T0 + HOUR, target())},
        409,
    )


def task_create_checks(s: Script) -> None:
    action = create_action("t", T0 + HOUR, target())
    s.rejects(
        "task.create", {"pid": "a-1", "ttl": SECOND, "action": create_action("t", T0 + HOUR)}, 400
    )
    s.rejects("task.create", {"pid": "a-1", "action": action}, 400)
    s.rejects("task.create", {"ttl": SECOND, "action": action}, 400)
    no_timeout = {**action, "data": {"id": "t", "tags": target()}}
    s.rpc("task.create", {"pid": "a-1", "ttl": SECOND, "action": no_timeout}, status=400)
    plain_promise(s, "plain")
    s.rejects(
        "task.create",
        {"pid": "a-1", "ttl": SECOND, "action": create_action("plain", T0 + HOUR, target())},
        422,
    )
    pending_task(s, "queued")
    s.rpc(
        "task.create",
        {"pid": "a-1", "ttl": SECOND, "action": create_action("queued", T0 + HOUR, target())},
        status=200,
        data__task=task("queued", "acquired", 1, ttl=SECOND, pid="a-1"),
    )
    s.rpc(
        "task.create",
        {"pid": "a-1", "ttl": SECOND, "action": create_action("late", T0 - SECOND, target())},
        status=200,
        data__task=task("late", "fulfilled", 0),
        data__promise__state="rejected_timedout",
    )
    s.rpc(
        "task.create",
        {"pid": "a-1", "ttl": SECOND, "action": create_action("late", T0 + HOUR, target())},
        status=200,
        data__task=task("late", "fulfilled", 0),
    )
    s.messages()


def task_acquire_versions(s: Script) -> None:
    pending_task(s, "t")
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "pending", 0))
    s.rejects("task.acquire", {"id": "missing", "version": 0, "pid": "a-1", "ttl": HOUR}, 404)
    s.rejects("task.acquire", {"id": "t", "version": 1, "pid": "a-1", "ttl": HOUR}, 409)
    s.rejects("task.acquire", {"id": "t", "version": 0, "ttl": HOUR}, 400)
    s.rejects("task.acquire", {"id": "t", "version": 0, "pid": "a-1"}, 400)
    s.advance(SECOND)
    s.rpc(
        "task.acquire",
        {"id": "t", "version": 0, "pid": "a-1", "ttl": HOUR},
        status=200,
        data__task=task("t", "acquired", 1, ttl=HOUR, pid="a-1"),
        data__promise=record("t", timeout=T0 + HOUR, created=T0, param=PARAM, tags=target()),
        data__preload=[],
    )
    s.rpc("task.acquire", {"id": "t", "version": 0, "pid": "a-2", "ttl": HOUR}, status=409)
    s.rpc("task.acquire", {"id": "t", "version": 1, "pid": "a-2", "ttl": HOUR}, status=409)
    s.messages()


def task_release_versions(s: Script) -> None:
    pending_task(s, "t")
    s.rpc("task.acquire", {"id": "t", "version": 0, "pid": "a-1", "ttl": HOUR}, status=200)
    s.rejects("task.release", {"id": "t", "version": 0}, 409)
    s.rejects("task.release", {"id": "missing", "version": 1}, 404)
    s.rpc("task.release", {"id": "t", "version": 1}, status=200, data={})
    s.messages(f"execute t v1 -> {A}")
    s.rpc("task.release", {"id": "t", "version": 1}, status=409)
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "pending", 1))
    acquire(s, "t", 1, "a-2")


def task_fulfill_versions(s: Script) -> None:
    new_task(s, "t")
    plain_promise(s, "p")
    s.rpc("promise.register_listener", {"awaited": "t", "address": GW}, status=200)
    s.rejects("task.fulfill", {"id": "t", "version": 1, "action": fulfill_action("t", "done")}, 400)
    s.rejects(
        "task.fulfill",
        {"id": "t", "version": 1, "action": fulfill_action("t", "rejected_timedout")},
        400,
    )
    s.rejects(
        "task.fulfill", {"id": "missing", "version": 1, "action": fulfill_action("missing")}, 404
    )
    s.rejects("task.fulfill", {"id": "p", "version": 1, "action": fulfill_action("p")}, 404)
    s.rejects("task.fulfill", {"id": "t", "version": 0, "action": fulfill_action("t")}, 409)
    s.advance(SECOND)
    s.rpc(
        "task.fulfill",
        {"id": "t", "version": 1, "action": fulfill_action("t")},
        status=200,
        data__promise=record(
            "t",
            "resolved",
            timeout=T0 + HOUR,
            created=T0,
            settled=T0 + SECOND,
            param=PARAM,
            value=VALUE,
            tags=target(),
        ),
    )
    s.messages(f"unblock t resolved -> {GW}")
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "fulfilled", 1))
    s.rpc(
        "task.fulfill",
        {"id": "t", "version": 1, "action": fulfill_action("t", "rejected")},
        status=409,
    )
    s.rpc("promise.get", {"id": "t"}, status=200, data__promise__state="resolved")


def task_suspend_checks(s: Script) -> None:
    new_task(s, "w")
    pending_task(s, "e1", B)
    plain_promise(s, "internal")
    plain_promise(s, "done", tags={"resonate:external": "true"})
    s.rpc("promise.settle", {"id": "done", "state": "resolved"}, status=200)
    suspend = {"id": "w", "version": 1}
    s.rejects("task.suspend", {**suspend, "actions": []}, 400)
    s.rejects("task.suspend", suspend, 400)
    s.rejects("task.suspend", {**suspend, "actions": [callback("w", "w")]}, 400)
    s.rejects(
        "task.suspend", {**suspend, "actions": [callback("e1", "w"), callback("e1", "w")]}, 400
    )
    s.rejects("task.suspend", {**suspend, "actions": [callback("missing", "w")]}, 422)
    s.rejects("task.suspend", {**suspend, "actions": [callback("internal", "w")]}, 422)
    s.rejects(
        "task.suspend", {"id": "nobody", "version": 1, "actions": [callback("e1", "nobody")]}, 404
    )
    s.rejects("task.suspend", {"id": "w", "version": 0, "actions": [callback("e1", "w")]}, 409)
    s.differs(
        "task.suspend",
        {**suspend, "actions": [callback("e1", "w"), callback("done", "w")]},
        PRELOAD_WHY,
        reference={"status": 300, "data": {"preload": []}},
        ours={"status": 300, "data__preload__0__id": "done", "data__preload__0__state": "resolved"},
    )
    s.rpc(
        "task.get",
        {"id": "w"},
        status=200,
        data__task=task("w", "acquired", 1, ttl=HOUR, pid="a-1"),
    )
    s.rpc(
        "task.suspend",
        {**suspend, "actions": [callback("e1", "w")]},
        status=200,
        data={"preload": []},
    )
    s.rpc("task.get", {"id": "w"}, status=200, data__task=task("w", "suspended", 1))
    s.rpc("task.suspend", {**suspend, "actions": [callback("e1", "w")]}, status=409)
    s.messages()


def task_suspend_and_resume(s: Script) -> None:
    new_task(s, "w")
    pending_task(s, "e1", B)
    pending_task(s, "e2", B)
    s.rpc(
        "task.suspend",
        {"id": "w", "version": 1, "actions": [callback("e1", "w"), callback("e2", "w")]},
        status=200,
    )
    s.advance(5 * SECOND)
    s.rpc("promise.settle", {"id": "e1", "state": "resolved", "value": VALUE}, status=200)
    s.messages(f"execute w v1 -> {A}")
    s.rpc("task.get", {"id": "w"}, status=200, data__task=task("w", "pending", 1, resumes=1))
    e1 = record(
        "e1",
        "resolved",
        timeout=T0 + HOUR,
        created=T0,
        settled=T0 + 5 * SECOND,
        param=PARAM,
        value=VALUE,
        tags=target(B),
    )
    acquire(s, "w", 1, "a-2", resumed_by=[e1])
    s.rpc("promise.settle", {"id": "e2", "state": "rejected", "value": VALUE}, status=200)
    s.rpc(
        "task.get",
        {"id": "w"},
        status=200,
        data__task=task("w", "acquired", 2, resumes=1, ttl=HOUR, pid="a-2"),
    )
    s.messages()


def task_fence(s: Script) -> None:
    new_task(s, "w")
    child = record("child", timeout=T0 + HOUR, created=T0, param=PARAM, tags=target(B))
    s.rpc(
        "task.fence",
        {"id": "w", "version": 1, "action": create_action("child", T0 + HOUR, target(B))},
        status=200,
        data={
            "action": {
                "kind": "promise.create",
                "head": {"corrId": "c2", "status": 200, "version": VERSION},
                "data": {"promise": child},
            },
            "preload": [],
        },
    )
    s.messages(f"execute child v0 -> {B}")
    s.advance(SECOND)
    s.rpc(
        "task.fence",
        {"id": "w", "version": 1, "action": settle_action("child")},
        status=200,
        data__action__kind="promise.settle",
        data__action__head__status=200,
        data__action__data__promise__state="resolved",
        data__action__data__promise__settledAt=T0 + SECOND,
    )
    s.rejects("task.fence", {"id": "w", "version": 0, "action": settle_action("child")}, 409)
    s.rejects("task.fence", {"id": "w", "version": 1, "action": create_action("w", T0 + HOUR)}, 400)
    s.rejects("task.fence", {"id": "missing", "version": 1, "action": settle_action("child")}, 404)
    no_timeout = {**create_action("c2", T0 + HOUR), "data": {"id": "c2"}}
    s.rpc(
        "task.fence",
        {"id": "w", "version": 1, "action": no_timeout},
        status=200,
        data__action__head__status=400,
        data__action__data=ERROR,
    )
    s.rpc(
        "task.fence",
        {"id": "w", "version": 1, "action": settle_action("child", "pending")},
        status=200,
        data__action__head__status=400,
    )
    s.rpc(
        "task.fence",
        {"id": "w", "version": 1, "action": settle_action("nothing")},
        status=200,
        data__action__head__status=404,
    )
    pending_task(s, "idle")
    s.rpc("task.fence", {"id": "idle", "version": 0, "action": settle_action("child")}, status=409)
    s.messages()


def task_heartbeat_extends_lease(s: Script) -> None:
    new_task(s, "t", ttl=10 * SECOND)
    s.advance(8 * SECOND)
    s.rpc(
        "task.heartbeat", {"pid": "a-1", "tasks": [{"id": "t", "version": 1}]}, status=200, data={}
    )
    s.at(T0 + 12 * SECOND)
    s.timeouts()
    s.messages()
    s.rpc("task.get", {"id": "t"}, status=200, data__task__state="acquired")
    s.at(T0 + 18 * SECOND)
    s.timeouts()
    s.messages(f"execute t v1 -> {A}")
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "pending", 1))


def task_heartbeat_checks_version_and_pid(s: Script) -> None:
    new_task(s, "t", ttl=10 * SECOND)
    s.advance(8 * SECOND)
    s.rpc("task.heartbeat", {"pid": "a-1", "tasks": [{"id": "t", "version": 2}]}, status=200)
    s.rpc("task.heartbeat", {"pid": "a-9", "tasks": [{"id": "t", "version": 1}]}, status=200)
    s.rpc("task.heartbeat", {"pid": "a-1", "tasks": []}, status=200, data={})
    s.at(T0 + 10 * SECOND)
    s.timeouts()
    s.messages(f"execute t v1 -> {A}")
    s.rpc(
        "task.acquire",
        {"id": "t", "version": 1, "pid": "a-2", "ttl": HOUR},
        status=200,
        data__task__version=2,
    )


def task_retry_and_lease_expiry(s: Script) -> None:
    pending_task(s, "t")
    s.at(T0 + 4 * SECOND)
    s.timeouts()
    s.messages()
    s.at(T0 + 5 * SECOND)
    s.timeouts()
    s.messages(f"execute t v0 -> {A}")
    s.at(T0 + 6 * SECOND)
    s.rpc("task.acquire", {"id": "t", "version": 0, "pid": "a-1", "ttl": SECOND}, status=200)
    s.at(T0 + 7 * SECOND)
    s.timeouts()
    s.messages(f"execute t v1 -> {A}")
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "pending", 1))
    s.rpc("task.acquire", {"id": "t", "version": 0, "pid": "a-2", "ttl": HOUR}, status=409)
    s.rpc(
        "task.acquire",
        {"id": "t", "version": 1, "pid": "a-2", "ttl": HOUR},
        status=200,
        data__task__version=2,
    )
    s.at(T0 + 12 * SECOND)
    s.timeouts()
    s.messages()


def task_delayed_start(s: Script) -> None:
    tags = {**target(), "resonate:delay": str(T0 + 30 * SECOND)}
    s.rpc("promise.create", {"id": "t", "timeoutAt": T0 + HOUR, "tags": tags}, status=200)
    s.messages()
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "pending", 0))
    s.at(T0 + 29 * SECOND)
    s.timeouts()
    s.messages()
    s.at(T0 + 30 * SECOND)
    s.timeouts()
    s.messages(f"execute t v0 -> {A}")


def task_halt_and_continue(s: Script) -> None:
    pending_task(s, "t")
    s.rejects("task.halt", {"id": "missing"}, 404)
    s.rpc("task.halt", {"id": "t"}, status=200, data={})
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "halted", 0))
    s.rpc("task.acquire", {"id": "t", "version": 0, "pid": "a-1", "ttl": HOUR}, status=409)
    s.rpc("task.halt", {"id": "t"}, status=200)
    s.at(T0 + 20 * SECOND)
    s.timeouts()
    s.messages()
    s.rpc("task.continue", {"id": "t"}, status=200, data={})
    s.messages(f"execute t v0 -> {A}")
    s.rejects("task.continue", {"id": "t"}, 409)
    s.rpc("task.continue", {"id": "missing"}, status=404)
    s.rpc("task.acquire", {"id": "t", "version": 0, "pid": "a-1", "ttl": HOUR}, status=200)
    s.rpc("task.fulfill", {"id": "t", "version": 1, "action": fulfill_action("t")}, status=200)
    s.rpc("task.halt", {"id": "t"}, status=409)


def task_get_checks(s: Script) -> None:
    s.rejects("task.get", {"id": "missing"}, 404)
    plain_promise(s, "plain")
    s.rpc("task.get", {"id": "plain"}, status=404)
    pending_task(s, "t", timeout=10 * SECOND)
    s.advance(10 * SECOND)
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "fulfilled", 0))


# -- timers ------------------------------------------------------------------------------


def wakes_at_timeout(s: Script, id: str, state: str, tags: dict[str, str]) -> None:
    """At T0+10s, ``id`` times out into ``state``: task w (suspended on it) and GW hear of it."""
    s.at(T0 + 10 * SECOND)
    s.timeouts()
    s.messages(f"execute w v1 -> {A}", f"unblock {id} {state} -> {GW}")
    settled = T0 + 10 * SECOND
    timed_out = record(
        id, state, timeout=settled, created=T0, settled=settled, param=PARAM, tags=tags
    )
    s.rpc("promise.get", {"id": id}, status=200, data__promise=timed_out)
    s.rpc("task.get", {"id": "w"}, status=200, data__task=task("w", "pending", 1, resumes=1))
    acquire(s, "w", 1, "a-1", resumed_by=[timed_out])


def external_timeout_wakes_task(s: Script) -> None:
    new_task(s, "w")
    pending_task(s, "child", B, timeout=10 * SECOND)
    s.rpc(
        "task.suspend", {"id": "w", "version": 1, "actions": [callback("child", "w")]}, status=200
    )
    s.rpc("promise.register_listener", {"awaited": "child", "address": GW}, status=200)
    wakes_at_timeout(s, "child", "rejected_timedout", target(B))
    s.rpc("task.get", {"id": "child"}, status=200, data__task=task("child", "fulfilled", 0))


def timer_resolves_and_wakes_task(s: Script) -> None:
    new_task(s, "w")
    timer = {"resonate:timer": "true"}
    s.rpc(
        "task.fence",
        {"id": "w", "version": 1, "action": create_action("sleep", T0 + 10 * SECOND, timer)},
        status=200,
        data__action__data__promise__state="pending",
    )
    s.rpc(
        "task.suspend", {"id": "w", "version": 1, "actions": [callback("sleep", "w")]}, status=200
    )
    s.rpc("promise.register_listener", {"awaited": "sleep", "address": GW}, status=200)
    s.at(T0 + 9 * SECOND)
    s.timeouts()
    s.messages()
    wakes_at_timeout(s, "sleep", "resolved", timer)


def internal_promise_timeout_not_pushed(s: Script) -> None:
    plain_promise(s, "p1", timeout=10 * SECOND)
    s.rpc("promise.register_listener", {"awaited": "p1", "address": GW}, status=200)
    s.at(T0 + 10 * SECOND)
    s.timeouts()
    s.messages()
    s.rpc("promise.get", {"id": "p1"}, status=200, data__promise__state="rejected_timedout")


# -- schedules ---------------------------------------------------------------------------


def schedule_request(id: str, cron: str = "*/5 * * * *", **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "cron": cron,
        "promiseId": "{{.id}}.{{.timestamp}}",
        "promiseTimeout": HOUR,
        "promiseParam": PARAM,
        "promiseTags": target(),
        **extra,
    }


def schedule_record(
    id: str, created: int, next_run: int, last_run: int | None = None, cron: str = "*/5 * * * *"
) -> dict[str, Any]:
    return {
        "id": id,
        "cron": cron,
        "promiseId": "{{.id}}.{{.timestamp}}",
        "promiseTimeout": HOUR,
        "promiseParam": PARAM,
        "promiseTags": target(),
        "nextRunAt": next_run,
        "lastRunAt": last_run,
        "createdAt": created,
    }


def schedule_create_get_delete(s: Script) -> None:
    s.advance(SECOND)
    created = schedule_record("s1", T0 + SECOND, T0 + 5 * MINUTE)
    s.rpc("schedule.create", schedule_request("s1"), status=200, data__schedule=created)
    s.rpc("schedule.get", {"id": "s1"}, status=200, data__schedule=created)
    s.rpc(
        "schedule.create", schedule_request("s1", "0 * * * *"), status=200, data__schedule=created
    )
    s.rpc("schedule.delete", {"id": "s1"}, status=200, data={})
    s.rejects("schedule.get", {"id": "s1"}, 404)
    s.rejects("schedule.delete", {"id": "s1"}, 404)


def schedule_checks(s: Script) -> None:
    request = schedule_request("s1")
    s.rejects("schedule.create", {k: v for k, v in request.items() if k != "cron"}, 400)
    s.rejects("schedule.create", {k: v for k, v in request.items() if k != "promiseTimeout"}, 400)
    s.rejects("schedule.create", {k: v for k, v in request.items() if k != "promiseId"}, 400)
    for cron in ("every minute", "* * * * * *", "x * * * *"):
        s.rejects("schedule.create", schedule_request("s1", cron), 400)
    s.rejects("schedule.get", {"id": "s1"}, 404)


def schedule_search_answers_as_resonates_server(s: Script) -> None:
    """resonate.sql has no schedule search (501); ours answers as Resonate's Rust server.

    The dashboard's overview and `asyncrpc schedules` list the schedules (docs/protocol.md).
    """
    why = "the overview and `asyncrpc schedules` list schedules; resonate.sql answers 501"

    def listed(id: str) -> dict[str, Any]:  # as ours answers it: no lastRunAt before a run
        record = schedule_record(id, T0, T0 + 5 * MINUTE)
        del record["lastRunAt"]
        return record

    s.rpc("schedule.create", schedule_request("s1"), status=200)
    s.rpc("schedule.create", schedule_request("s2"), status=200)
    s.differs(
        "schedule.search",
        {},
        why,
        reference={"status": 501, "data": ERROR, "kind": "schedule.search"},
        ours={
            "status": 200,
            "data": {"schedules": [listed("s1"), listed("s2")]},
        },
    )
    s.differs(
        "schedule.search",
        {"limit": 1},
        why,
        reference={"status": 501, "data": ERROR},
        ours={
            "status": 200,
            "data": {"schedules": [listed("s1")], "cursor": "s1"},
        },
    )
    s.differs(
        "schedule.search",
        {"limit": 0},
        why,
        reference={"status": 501, "data": ERROR},
        ours={"status": 400, "data": "bad request"},
    )


def schedule_next_run_from_cron(s: Script) -> None:
    for id, cron, next_run in (
        ("every-minute", "* * * * *", T0 + MINUTE),
        ("hourly", "0 * * * *", T0 + HOUR),
        ("weekday-mornings", "30 9 * * 1-5", T0 + 9 * HOUR + 30 * MINUTE),
        ("saturdays", "0 0 * * 6", T0 + 2 * 24 * HOUR),
        ("first-of-month", "0 0 1 * *", T0 + 31 * 24 * HOUR),
        ("quarter-hours", "0,15,30,45 * * * *", T0 + 15 * MINUTE),
    ):
        s.rpc(
            "schedule.create",
            schedule_request(id, cron),
            status=200,
            data__schedule__nextRunAt=next_run,
        )


def schedule_creates_due_promises(s: Script) -> None:
    s.rpc("schedule.create", schedule_request("s1"), status=200)
    s.at(T0 + 5 * MINUTE - 1)
    s.timeouts()
    s.messages()
    first = T0 + 5 * MINUTE
    s.at(first)
    s.timeouts()
    s.messages(f"execute s1.{first} v0 -> {A}")
    s.rpc(
        "promise.get",
        {"id": f"s1.{first}"},
        status=200,
        data__promise=record(
            f"s1.{first}", timeout=first + HOUR, created=first, param=PARAM, tags=target()
        ),
    )
    s.rpc(
        "schedule.get",
        {"id": "s1"},
        status=200,
        data__schedule=schedule_record("s1", T0, first + 5 * MINUTE, last_run=first),
    )
    s.at(T0 + 16 * MINUTE)
    s.timeouts()
    second, third = T0 + 10 * MINUTE, T0 + 15 * MINUTE
    s.messages(
        f"execute s1.{first} v0 -> {A}",
        f"execute s1.{second} v0 -> {A}",
        f"execute s1.{third} v0 -> {A}",
    )
    s.rpc(
        "schedule.get",
        {"id": "s1"},
        status=200,
        data__schedule__lastRunAt=third,
        data__schedule__nextRunAt=T0 + 20 * MINUTE,
    )
    s.rpc(
        "task.get",
        {"id": f"s1.{second}"},
        status=200,
        data__task=task(f"s1.{second}", "pending", 0),
    )
    s.rpc("schedule.delete", {"id": "s1"}, status=200)
    s.at(T0 + 21 * MINUTE)
    s.timeouts()
    s.rpc("promise.get", {"id": f"s1.{T0 + 20 * MINUTE}"}, status=404)


# -- edges a differential run against resonate.sql found ---------------------------------

#: The largest bigint: a ttl that puts a lease's end past it overflows in resonate.sql.
BIGINT_MAX = 2**63 - 1


def tags_that_are_json_booleans(s: Script) -> None:
    """``tags->>'resonate:timer' = 'true'``: the JSON true counts as the string does."""
    timer, external = {"resonate:timer": True}, {"resonate:external": True}
    new_task(s, "w")
    for id, tags in (("sleep", timer), ("ext", external)):
        s.rpc(
            "promise.create",
            {"id": id, "timeoutAt": T0 + 10 * SECOND, "tags": tags},
            status=200,
            data__promise=record(id, timeout=T0 + 10 * SECOND, created=T0, tags=tags),
        )
        s.rpc("promise.register_callback", {"awaited": id, "awaiter": "w"}, status=200)
        s.rpc("promise.register_listener", {"awaited": id, "address": GW}, status=200)
    s.rpc(
        "promise.create",
        {"id": "woke", "timeoutAt": T0 - SECOND, "tags": timer},
        status=200,
        data__promise__state="resolved",
    )
    s.at(T0 + 10 * SECOND)
    s.timeouts()
    s.messages(f"unblock sleep resolved -> {GW}", f"unblock ext rejected_timedout -> {GW}")
    s.rpc("promise.get", {"id": "sleep"}, status=200, data__promise__state="resolved")
    s.rpc("task.get", {"id": "w"}, status=200, data__task__resumes=2)
    s.rpc(
        "promise.create",
        {"id": "not-a-timer", "timeoutAt": T0, "tags": {"resonate:timer": "True"}},
        status=200,
        data__promise__state="rejected_timedout",
    )


def create_timed_out_reads_target_and_delay_as_resonate_sql(s: Script) -> None:
    """Born timed out: a task whenever the target key is there (null too), the delay unread."""
    past = T0 - SECOND
    for id, tags in (
        ("null-target", {"resonate:target": None}),
        ("bad-delay", {**target(), "resonate:delay": "soon"}),
        ("object-delay", {**target(), "resonate:delay": {"at": 1}}),
    ):
        s.rpc(
            "promise.create",
            {"id": id, "timeoutAt": past, "tags": tags},
            status=200,
            data__promise=record(
                id, "rejected_timedout", timeout=past, created=past, settled=past, tags=tags
            ),
        )
        s.rpc("task.get", {"id": id}, status=200, data__task=task(id, "fulfilled", 0))
    s.rejects(
        "promise.create",
        {
            "id": "pending-bad-delay",
            "timeoutAt": T0 + HOUR,
            "tags": {**target(), "resonate:delay": "soon"},
        },
        400,
    )
    s.rpc("promise.get", {"id": "pending-bad-delay"}, status=404)
    s.rpc(
        "promise.create",
        {"id": "pending-null-target", "timeoutAt": T0 + HOUR, "tags": {"resonate:target": None}},
        status=200,
    )
    s.rejects("task.get", {"id": "pending-null-target"}, 404)
    s.rpc(
        "promise.create",
        {"id": "null-delay", "timeoutAt": T0 + HOUR, "tags": {**target(), "resonate:delay": None}},
        status=200,
    )
    s.messages(f"execute null-delay v0 -> {A}")


def object_data_is_postgres_json_text(s: Script) -> None:
    """A ``data`` that is not a string is kept as Postgres writes jsonb as text."""
    data = {"x": [1, 2], "bb": True, "a": {"é": "\n\u0001", "": None}, "c": 2.5}
    text = '{"a": {"": null, "é": "\\n\\u0001"}, "c": 2.5, "x": [1, 2], "bb": true}'
    s.rpc(
        "promise.create",
        {"id": "p1", "timeoutAt": T0 + HOUR, "param": {"headers": {}, "data": data}},
        status=200,
        data__promise__param={"headers": {}, "data": text},
    )
    for id, value, written in (
        ("p2", [], "[]"),
        ("p3", {}, "{}"),
        ("p4", 7, "7"),
        ("p5", False, "false"),
        ("p6", ['a"b', -3, 1.0], '["a\\"b", -3, 1.0]'),
    ):
        plain_promise(s, id)
        s.rpc(
            "promise.settle",
            {"id": id, "state": "resolved", "value": {"headers": {"h": "v"}, "data": value}},
            status=200,
            data__promise__value={"headers": {"h": "v"}, "data": written},
        )


def null_headers(s: Script) -> None:
    """``"headers": null`` reads as no headers: {} (resonate.sql keeps the null)."""
    why = "a null field is absent; the TypeScript SDK refuses a record whose headers are null"
    nulled = {"headers": None, "data": "MQ=="}
    s.differs(
        "promise.create",
        {"id": "p1", "timeoutAt": T0 + HOUR, "param": nulled},
        why,
        reference={"status": 200, "data__promise__param": nulled},
        ours={"status": 200, "data__promise__param": {"headers": {}, "data": "MQ=="}},
    )
    s.differs(
        "promise.settle",
        {"id": "p1", "state": "resolved", "value": {"headers": None}},
        why,
        reference={"status": 200, "data__promise__value": {"headers": None, "data": None}},
        ours={"status": 200, "data__promise__value": {"headers": {}}},
    )
    schedule = {**schedule_request("s1"), "promiseParam": nulled}
    s.differs(
        "schedule.create",
        schedule,
        why,
        reference={"status": 200, "data__schedule__promiseParam": nulled},
        ours={"status": 200, "data__schedule__promiseParam": {"headers": {}, "data": "MQ=="}},
    )
    s.rpc(
        "promise.create",
        {"id": "p2", "timeoutAt": T0 + HOUR, "param": {"headers": "h", "data": "MQ=="}},
        status=200,
        data__promise__param={"headers": "h", "data": "MQ=="},
    )


def ttl_past_a_bigint_is_a_400(s: Script) -> None:
    """``now + ttl`` overflows a bigint in resonate.sql: a 400 where a lease would be taken."""
    pending_task(s, "t")
    s.rejects("task.acquire", {"id": "t", "version": 0, "pid": "a-1", "ttl": BIGINT_MAX}, 400)
    s.rpc("task.get", {"id": "t"}, status=200, data__task=task("t", "pending", 0))
    s.rejects("task.acquire", {"id": "t", "version": 5, "pid": "a-1", "ttl": BIGINT_MAX}, 409)
    s.rejects("task.acquire", {"id": "nope", "version": 0, "pid": "a-1", "ttl": BIGINT_MAX}, 404)
    big = {"pid": "a-1", "ttl": BIGINT_MAX}
    s.rejects("task.create", {**big, "action": create_action("n", T0 + HOUR, target())}, 400)
    s.rpc("promise.get", {"id": "n"}, status=404)
    s.rejects("task.create", {**big, "action": create_action("t", T0 + HOUR, target())}, 400)
    s.rpc(
        "task.create",
        {**big, "action": create_action("late", T0 - SECOND, target())},
        status=200,
        data__task=task("late", "fulfilled", 0),
    )
    just_fits = BIGINT_MAX - T0
    s.rpc(
        "task.acquire",
        {"id": "t", "version": 0, "pid": "a-1", "ttl": just_fits},
        status=200,
        data__task=task("t", "acquired", 1, ttl=just_fits, pid="a-1"),
    )
    s.advance(SECOND)
    s.rejects("task.heartbeat", {"pid": "a-1", "tasks": [{"id": "t", "version": 1}]}, 400)
    s.rpc("task.heartbeat", {"pid": "a-1", "tasks": [{"id": "t", "version": 9}]}, status=200)
    s.rpc(
        "task.create",
        {**big, "action": create_action("late", T0 + HOUR, target())},
        status=200,
        data__task=task("late", "fulfilled", 0),
    )


def cron_text_read_as_resonate_sql(s: Script) -> None:
    """Numbers as Postgres casts them, fields split where Postgres splits them."""
    for cron, next_run in (
        ("+5 * * * *", T0 + 5 * MINUTE),
        ("05 * * * *", T0 + 5 * MINUTE),
        ("0x5 * * * *", T0 + 5 * MINUTE),
        ("1_0 * * * *", T0 + 10 * MINUTE),
        ("*/+5 * * * *", T0 + 5 * MINUTE),
        ("  *  *  * * *  ", T0 + MINUTE),
        ("3-4-9 * * * *", T0 + 3 * MINUTE),
        ("*/7/2 * * * *", T0 + 7 * MINUTE),
        ("*\u3000* * * *", T0 + MINUTE),
    ):
        s.rpc(
            "schedule.create",
            schedule_request(f"ok {cron!r}", cron),
            status=200,
            data__schedule__nextRunAt=next_run,
        )
    for cron in (
        "\u00b2 * * * *",
        "\uff15 * * * *",
        "\u0663 * * * *",
        "\t* * * * *",
        "* * * * *\n",
        "*\u00a0* * * *",
        "1__0 * * * *",
        "5.0 * * * *",
        "",
    ):
        s.rejects("schedule.create", schedule_request(f"bad {cron!r}", cron), 400)


# -- envelopes ------------------------------------------------------------------------------


def head_is_echoed(s: Script) -> None:
    s.rpc(
        "promise.get",
        {"id": "p"},
        request_head={"corrId": "abc", "version": "2025-01-15"},
        head={"corrId": "abc", "status": 404, "version": "2025-01-15"},
        data=ERROR,
    )
    s.rpc(
        "promise.create",
        {"id": "p", "timeoutAt": T0 + HOUR},
        request_head={"corrId": "xyz", "version": VERSION},
        head__corrId="xyz",
        head__version=VERSION,
        head__status=200,
    )


def unknown_kind(s: Script) -> None:
    s.rpc("promise.frobnicate", {"id": "p"}, status=501, kind="promise.frobnicate", data=ERROR)
    s.rpc("task.frobnicate", {}, status=501, kind="task.frobnicate", data=ERROR)


def task_acquisitions_is_ours(s: Script) -> None:
    """``task.acquisitions`` is our extension (the timeline's record); resonate.sql: 501."""
    s.rpc("promise.create", {"id": "p", "timeoutAt": T0 + HOUR, "tags": target()}, status=200)
    s.rpc("task.acquire", {"id": "p", "version": 0, "pid": "w", "ttl": MINUTE}, status=200)
    s.differs(
        "task.acquisitions",
        {"id": "p"},
        "the dashboard's timeline tells resumes from takeovers; resonate.sql keeps no record",
        reference={"status": 501, "data": ERROR},
        ours={
            "status": 200,
            "data": {"acquisitions": [{"version": 1, "pid": "w", "at": T0, "cause": "first"}]},
        },
    )


SCENARIOS: list[Scenario] = [
    promise_create_and_get,
    promise_get_missing,
    promise_create_needs_timeout,
    promise_create_already_timed_out,
    promise_settle_states,
    promise_settle_checks,
    promise_timeout_seen_on_read,
    listener_unblocks_on_settle,
    listener_address_checks,
    callback_checks,
    callback_resumes_running_task,
    task_create_acquires,
    task_create_checks,
    task_acquire_versions,
    task_release_versions,
    task_fulfill_versions,
    task_suspend_checks,
    task_suspend_and_resume,
    task_fence,
    task_heartbeat_extends_lease,
    task_heartbeat_checks_version_and_pid,
    task_retry_and_lease_expiry,
    task_delayed_start,
    task_halt_and_continue,
    task_get_checks,
    external_timeout_wakes_task,
    timer_resolves_and_wakes_task,
    internal_promise_timeout_not_pushed,
    schedule_create_get_delete,
    schedule_checks,
    schedule_search_answers_as_resonates_server,
    schedule_next_run_from_cron,
    schedule_creates_due_promises,
    tags_that_are_json_booleans,
    create_timed_out_reads_target_and_delay_as_resonate_sql,
    object_data_is_postgres_json_text,
    null_headers,
    ttl_past_a_bigint_is_a_400,
    cron_text_read_as_resonate_sql,
    head_is_echoed,
    unknown_kind,
    task_acquisitions_is_ours,
]
