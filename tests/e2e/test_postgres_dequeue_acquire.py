"""``asyncrpc.dequeue_acquire``, the schema step's dequeue that also takes each task's lease.

For each execute row it claims, up to ``p_leases`` of them, it acquires the
task for the dequeuing process and returns the ``data`` of the answer
``asyncrpc.rpc`` gives that process's ``task.acquire`` (preload included); a
row whose acquire fails comes back with NULL, claimed all the same, as
``dequeue_execute`` claims it. A least-privilege role (a member of
resonate_worker) may call it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest
from resonate_pg.connection import DEQUEUE_EXECUTE_SQL

from asyncrpc.network.postgres_link import DEQUEUE_ACQUIRE_SQL, WRAPPED_RPC_SQL
from harness.postgres import ResonateCluster

HOUR = 3_600_000
FAR = 2**50
NOW = 1_700_000_000_000
TARGET = "poll://any@service-a"
EXTERNAL = {"resonate:external": "true"}


def connect(cluster: ResonateCluster, purpose: str) -> Any:
    return psycopg.connect(cluster.database(purpose), autocommit=True)


def call(db: Any, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    head = {"corrId": kind, "version": "2025-01-15", "resonate:debug_time": str(NOW)}
    row = db.execute(WRAPPED_RPC_SQL, (json.dumps({"kind": kind, "head": head, "data": data}),))
    answer: dict[str, Any] = json.loads(row.fetchone()[0])
    return answer


def ok(db: Any, kind: str, data: dict[str, Any]) -> None:
    assert call(db, kind, data)["head"]["status"] == 200, (kind, data)


def resumed(db: Any, root: str, child: str) -> None:
    """``root``'s task suspended on ``child``, ``child`` resolved: an execute row for ``root``."""
    create = {"id": root, "timeoutAt": FAR, "param": {}, "tags": {"resonate:target": TARGET}}
    action = {"kind": "promise.create", "head": {"corrId": "", "version": ""}, "data": create}
    ok(db, "task.create", {"pid": "a-1", "ttl": HOUR, "action": action})
    ok(db, "promise.create", {"id": child, "timeoutAt": FAR, "tags": EXTERNAL})
    awaited = {
        "kind": "promise.register_callback",
        "head": {"corrId": "", "version": ""},
        "data": {"awaited": child, "awaiter": root},
    }
    ok(db, "task.suspend", {"id": root, "version": 1, "actions": [awaited]})
    settle = {"id": child, "state": "resolved", "value": {"headers": {}, "data": "MQ=="}}
    ok(db, "promise.settle", settle)


def dequeue_acquire(db: Any, leases: int, pid: str = "a-2") -> list[tuple[str, int, str | None]]:
    return list(db.execute(DEQUEUE_ACQUIRE_SQL, (TARGET, 100, pid, HOUR, leases)).fetchall())


def task_row(db: Any, task: str) -> tuple[str, int, str | None]:
    row = db.execute("SELECT state, version, pid FROM resonate.tasks WHERE id = %s", (task,))
    state, version, pid = row.fetchone()
    return str(state), int(version), pid


def test_the_dequeue_answers_as_asyncrpc_rpc_answers_the_acquire(
    resonate_cluster: ResonateCluster,
) -> None:
    with connect(resonate_cluster, "lease") as ours, connect(resonate_cluster, "plain") as plain:
        for db in (ours, plain):
            resumed(db, "root", "child")

        [(task, version, acquired)] = dequeue_acquire(ours, leases=64)
        [(plain_task, plain_version)] = plain.execute(DEQUEUE_EXECUTE_SQL, (TARGET, 100))
        assert (task, version) == (plain_task, plain_version) == ("root", 1)
        answer = call(
            plain, "task.acquire", {"id": "root", "version": 1, "pid": "a-2", "ttl": HOUR}
        )

        assert acquired is not None
        assert json.loads(acquired) == answer["data"]
        [child] = answer["data"]["preload"]  # the preload asyncrpc.rpc adds, in both
        assert child["id"] == "child"
        assert task_row(ours, "root") == task_row(plain, "root") == ("acquired", 2, "a-2")
        assert dequeue_acquire(ours, leases=64) == []  # the row is claimed, as dequeue_execute's


def test_no_lease_beyond_what_the_caller_has_room_for(resonate_cluster: ResonateCluster) -> None:
    with connect(resonate_cluster, "room") as db:
        for n in range(3):
            resumed(db, f"root-{n}", f"child-{n}")
        rows = dequeue_acquire(db, leases=1)
        assert [(task, version) for task, version, _ in rows] == [
            ("root-0", 1),
            ("root-1", 1),
            ("root-2", 1),
        ]
        assert [acquired is not None for _, _, acquired in rows] == [True, False, False]
        assert task_row(db, "root-0")[0] == "acquired"
        # The others are plain execute messages: their tasks wait for the process's acquire.
        assert task_row(db, "root-1") == task_row(db, "root-2") == ("pending", 1, None)


def test_a_failed_acquire_is_a_plain_row_and_takes_nothing_back(
    resonate_cluster: ResonateCluster,
) -> None:
    with connect(resonate_cluster, "taken") as db:
        resumed(db, "first", "first-child")
        resumed(db, "second", "second-child")
        # Another process acquires "first" before the row is dequeued: its acquire here fails.
        ok(db, "task.acquire", {"id": "first", "version": 1, "pid": "x-1", "ttl": HOUR})
        rows = dequeue_acquire(db, leases=64)
        assert [(task, acquired is None) for task, _, acquired in rows] == [
            ("first", True),
            ("second", False),
        ]
        assert task_row(db, "first") == ("acquired", 2, "x-1")
        assert task_row(db, "second") == ("acquired", 2, "a-2")


def test_a_least_privilege_role_may_call_it(resonate_cluster: ResonateCluster) -> None:
    with connect(resonate_cluster, "roles") as db:
        resumed(db, "root", "child")
        db.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lease_worker') "
            "THEN CREATE ROLE lease_worker NOLOGIN IN ROLE resonate_worker; END IF; END $$"
        )
        db.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lease_stranger') "
            "THEN CREATE ROLE lease_stranger NOLOGIN; END IF; END $$"
        )
        db.execute("SET ROLE lease_stranger")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            dequeue_acquire(db, leases=64)
        db.execute("RESET ROLE")
        db.execute("SET ROLE lease_worker")
        [(task, _, acquired)] = dequeue_acquire(db, leases=64)
        assert task == "root" and acquired is not None


def test_a_lease_taken_in_a_dequeue_and_never_used_lapses_and_the_task_is_given_again(
    resonate_cluster: ResonateCluster,
) -> None:
    """A node killed between its dequeue and the step loses nothing: as after any crash."""
    with connect(resonate_cluster, "lapse") as db:
        resumed(db, "root", "child")
        rows = db.execute(DEQUEUE_ACQUIRE_SQL, (TARGET, 100, "a-1", 50, 64)).fetchall()
        assert [(task, acquired is not None) for task, _, acquired in rows] == [("root", True)]
        assert dequeue_acquire(db, leases=64) == []  # claimed, and leased to a-1
        time.sleep(0.2)  # the 50 ms lease runs out, unused
        db.execute("SELECT resonate.process_timeouts()")
        assert task_row(db, "root") == ("pending", 2, None)
        [(task, version, acquired)] = dequeue_acquire(db, leases=64, pid="a-2")
        assert (task, version) == ("root", 2) and acquired is not None
        assert json.loads(acquired)["task"]["pid"] == "a-2"
        assert task_row(db, "root") == ("acquired", 3, "a-2")


def test_an_acquire_that_raises_takes_back_only_itself(resonate_cluster: ResonateCluster) -> None:
    """Each acquire runs in a subtransaction: an error in one (here a lease whose end is past a
    bigint) leaves its row claimed and plain, and the dequeue and the other rows stand."""
    with connect(resonate_cluster, "raises") as db:
        resumed(db, "first", "first-child")
        rows = db.execute(DEQUEUE_ACQUIRE_SQL, (TARGET, 100, "a-1", 2**63 - 1, 64)).fetchall()
        assert [(task, acquired) for task, _, acquired in rows] == [("first", None)]
        assert task_row(db, "first") == ("pending", 1, None)
        assert dequeue_acquire(db, leases=64) == []  # claimed all the same
        resumed(db, "second", "second-child")
        [(task, _, acquired)] = dequeue_acquire(db, leases=64)
        assert task == "second" and acquired is not None
