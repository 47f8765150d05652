"""`asyncrpc promises`' query (pattern, state, limit, newest first) and the choice of server.

Everything here is in-process: the query works on records, and the server a read
goes to is chosen from the options, the run directory and the environment, each
passed in.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asyncrpc.ops.promises import (
    FROM_ENV,
    FROM_OPTION,
    FROM_RUN_DIR,
    query_of,
    running_server,
    server_to_read,
)
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.readers.promises import (
    InvalidQuery,
    PromiseQuery,
    StateFilter,
    state_filter,
)
from asyncrpc.runtime.errors import NothingRunning, UsageError
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import LauncherSnapshot, Phase, RunState


def record(promise_id: str, state: PromiseState, created_at: int) -> PromiseRecord:
    return PromiseRecord(id=promise_id, state=state, created_at=created_at)


RECORDS = [
    record("await-chain-1", PromiseState.RESOLVED, 100),
    record("await-chain-1:bar", PromiseState.RESOLVED, 110),
    record("await-chain-2", PromiseState.PENDING, 300),
    record("await-chain-3", PromiseState.REJECTED_TIMEDOUT, 200),
    record("fan-out-1", PromiseState.REJECTED, 400),
    record("fan-out-2", PromiseState.REJECTED_CANCELED, 500),
    record("a*b", PromiseState.RESOLVED, 50),
]


def ids(query: PromiseQuery) -> list[str]:
    return [r.id for r in query.pick(RECORDS).promises]


def test_a_pattern_matches_whole_ids_with_star_for_any_characters() -> None:
    assert ids(PromiseQuery("await-chain-*")) == [
        "await-chain-2",
        "await-chain-3",
        "await-chain-1:bar",
        "await-chain-1",
    ]
    assert ids(PromiseQuery("*-1")) == ["fan-out-1", "await-chain-1"]
    assert ids(PromiseQuery("*:*")) == ["await-chain-1:bar"]
    # Without a star it is one id; other regex characters mean themselves.
    assert ids(PromiseQuery("await-chain-1")) == ["await-chain-1"]
    assert ids(PromiseQuery("await.chain-1")) == []
    assert ids(PromiseQuery("a*b")) == ["a*b"]
    assert ids(PromiseQuery("*")) == [r.id for r in sorted(RECORDS, key=lambda r: -r.created_at)]


def test_the_newest_come_first_and_the_limit_keeps_the_newest() -> None:
    page = PromiseQuery("*", limit=2).pick(RECORDS)
    assert [r.id for r in page.promises] == ["fan-out-2", "fan-out-1"]
    assert (page.matched, page.truncated) == (len(RECORDS), True)
    whole = PromiseQuery("fan-out-*", limit=2).pick(RECORDS)
    assert (whole.matched, whole.truncated) == (2, False)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (StateFilter.PENDING, ["await-chain-2"]),
        (StateFilter.RESOLVED, ["await-chain-1:bar", "await-chain-1", "a*b"]),
        (StateFilter.REJECTED, ["fan-out-2", "fan-out-1", "await-chain-3"]),
        (StateFilter.TIMEDOUT, ["await-chain-3"]),
        (StateFilter.CANCELED, ["fan-out-2"]),
    ],
)
def test_a_state_filter_matches_its_protocol_states(
    state: StateFilter, expected: list[str]
) -> None:
    assert ids(PromiseQuery("*", state)) == expected


def test_the_server_narrows_by_prefix_and_only_by_the_pending_state() -> None:
    assert PromiseQuery("await-chain-*").id_prefix == "await-chain-"
    assert PromiseQuery("*-1").id_prefix is None
    assert PromiseQuery("x", StateFilter.PENDING).server_state is PromiseState.PENDING
    # A settled state is matched on the records: resonate-pg may still store it as pending.
    for state in (StateFilter.RESOLVED, StateFilter.TIMEDOUT, StateFilter.REJECTED):
        assert PromiseQuery("x", state).server_state is None


def test_states_are_read_by_name_or_protocol_name_and_a_bad_one_says_what_is_valid() -> None:
    assert state_filter("timedout") is StateFilter.TIMEDOUT
    assert state_filter("rejected_timedout") is StateFilter.TIMEDOUT
    assert state_filter(" Pending ") is StateFilter.PENDING
    with pytest.raises(InvalidQuery, match="Valid states: pending, resolved, rejected"):
        state_filter("done")
    with pytest.raises(UsageError, match="unknown state 'done'"):
        query_of("*", "done", 10)
    with pytest.raises(UsageError, match="1 or more"):
        query_of("*", None, 0)
    with pytest.raises(InvalidQuery, match="give a pattern"):
        PromiseQuery("")


def test_a_record_as_json_says_everything_get_shows() -> None:
    data = PromiseRecord.from_wire(
        {
            "id": "x",
            "state": "rejected",
            "param": {"headers": {}, "data": "eyJmdW5jIjogImZvbyIsICJhcmdzIjogWzFdfQ=="},
            "value": {"headers": {}, "data": "eyJtZXNzYWdlIjogImJvb20ifQ=="},
            "tags": {"resonate:target": "poll://any@service-a"},
            "timeoutAt": 9000,
            "createdAt": 1000,
            "settledAt": 1500,
        }
    ).to_json()
    assert data == {
        "id": "x",
        "state": "rejected",
        "function": "foo",
        "group": "service-a",
        "target": "poll://any@service-a",
        "param": {"func": "foo", "args": [1]},
        "value": {"message": "boom"},
        "error": "boom",
        "tags": {"resonate:target": "poll://any@service-a"},
        "timeout_at": 9000,
        "created_at": 1000,
        "settled_at": 1500,
    }


# -- which server a read goes to ------------------------------------------------


def test_the_option_wins_then_the_run_directorys_system_then_resonate_url(
    tmp_path: Path,
) -> None:
    rundir = RunDir(tmp_path)
    env = {"RESONATE_URL": "http://env:1/", "RESONATE_TOKEN": "t"}
    running = lambda _: "http://run-dir:2"  # noqa: E731
    nothing = lambda _: None  # noqa: E731

    chosen = server_to_read("http://option:3/", rundir, env, running)
    assert (chosen.url, chosen.token, chosen.source) == ("http://option:3", "t", FROM_OPTION)
    chosen = server_to_read(None, rundir, env, running)
    assert chosen.url == "http://run-dir:2" and chosen.source.startswith(FROM_RUN_DIR)
    chosen = server_to_read(None, rundir, env, nothing)
    assert (chosen.url, chosen.source) == ("http://env:1", FROM_ENV)


def test_with_no_server_named_it_never_guesses_the_default_address(tmp_path: Path) -> None:
    """The default address may be another run directory's system, with the same fixed ids."""
    with pytest.raises(NothingRunning, match=f"nothing runs in {tmp_path}"):
        server_to_read(None, RunDir(tmp_path), {}, lambda _: None)


def state_with(supervisor: ProcessRef, server_url: str) -> RunState:
    snapshot = LauncherSnapshot(
        phase=Phase.READY,
        error=None,
        run_dir="/tmp/run",
        server_url=server_url,
        server_embedded=True,
        gateway_url=None,
        respawn=None,
        replicas=[],
    )
    return RunState(supervisor, "http://127.0.0.1:1", "t", snapshot)


def test_the_run_directorys_server_is_read_only_while_its_supervisor_lives(
    tmp_path: Path,
) -> None:
    rundir = RunDir(tmp_path)
    assert running_server(rundir) is None  # no state file
    me = ProcessRef.of(os.getpid())
    assert me is not None
    rundir.write_state(state_with(me, "http://127.0.0.1:8101"))
    assert running_server(rundir) == "http://127.0.0.1:8101"
    # A state file left by a supervisor that is gone (its pid now another process's).
    rundir.write_state(state_with(ProcessRef(os.getpid(), "another start"), "http://x:1"))
    assert running_server(rundir) is None
