"""End-to-end: `asyncrpc promises search/get` on a real `asyncrpc server` and on resonate-pg.

Each server gets the same promises, made through the protocol as a Resonate SDK would
(`promise.create`, `promise.settle`, values encoded by the SDK's codec): a pending
call, a resolved one with a step, a rejected one carrying the exception, a canceled
one, and one left pending past its timeout, which both servers must show as timed
out. Then the commands run against it, as a person types them (one in a process of
its own, the rest in-process for time), and what they print is checked field by
field. resonate-pg runs in a throwaway Postgres (harness/postgres.py) and needs
ASYNCRPC_RESONATE_SQL; it is skipped without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from resonate.codec import Codec, NoopEncryptor
from typer.testing import CliRunner

from asyncrpc.cli import app
from asyncrpc.postgres.schema import RESONATE_SQL_ENV
from asyncrpc.protocol.answers import Answer
from asyncrpc.readers.http import HttpEndpoint
from asyncrpc.readers.postgres import PostgresTables
from harness.isolation import isolated_env
from harness.postgres import ResonateCluster
from harness.processes import ASYNCRPC, Processes

CODEC = Codec(NoopEncryptor())
HOUR_MS = 3_600_000
#: The promises every server is given, oldest first.
CREATED_IN_ORDER = ["shop-1", "shop-2", "shop-2:charge", "shop-3", "shop-4", "late-1"]


def now_ms() -> int:
    return int(time.time() * 1000)


def encoded(value: Any) -> dict[str, Any]:
    wire = CODEC.encode(value)
    return {"headers": wire.headers or {}, "data": wire.data}


def call(func: str, *args: Any) -> dict[str, Any]:
    return encoded({"func": func, "args": list(args), "kwargs": {}, "version": 1})


def target(group: str) -> dict[str, str]:
    return {"resonate:target": f"poll://any@{group}"}


def make_promises(ask: Callable[..., Answer]) -> None:
    """The same promises on any server, each a few ms after the one before (newest last)."""

    def create(promise_id: str, timeout_at: int, param: Any, tags: dict[str, str]) -> None:
        answer = ask("promise.create", id=promise_id, timeoutAt=timeout_at, param=param, tags=tags)
        assert answer.status == 200, answer
        time.sleep(0.02)  # distinct creation times: the order is newest first

    def settle(promise_id: str, state: str, value: Any) -> None:
        answer = ask("promise.settle", id=promise_id, state=state, value=value)
        assert answer.status == 200, answer

    far = now_ms() + HOUR_MS
    create("shop-1", far, call("foo", 1), {**target("service-a"), "resonate:origin": "shop-1"})
    create("shop-2", far, call("foo", 2), {**target("service-a"), "resonate:origin": "shop-2"})
    create(
        "shop-2:charge",
        far,
        call("bar", 2),
        {**target("service-b"), "resonate:origin": "shop-2", "resonate:parent": "shop-2"},
    )
    create("shop-3", far, call("baz", 3), target("service-c"))
    create("shop-4", far, call("qux", 4), {})
    create("late-1", now_ms() + 300, encoded({"order": 5}), {})
    settle("shop-2:charge", "resolved", encoded({"charged": 2, "currency": "EUR"}))
    settle("shop-2", "resolved", encoded(3))
    settle("shop-3", "rejected", encoded(ValueError("card declined")))
    settle("shop-4", "rejected_canceled", encoded(None))
    time.sleep(0.4)  # late-1 is past its timeout now, never settled by anyone


@dataclass
class Server:
    kind: str
    url: str
    tmp: Path

    def cli(self, *args: str) -> tuple[int, str, str]:
        """`asyncrpc ARGS --server-url URL`, in-process."""
        result = CliRunner().invoke(
            app,
            [*args, "--server-url", self.url, "--run-dir", str(self.tmp / "run")],
            env={"RESONATE_URL": None, "RESONATE_TOKEN": None, "COLUMNS": "200"},
        )
        assert "Traceback" not in result.output
        return result.exit_code, result.stdout, result.stderr

    def json(self, *args: str) -> Any:
        code, stdout, stderr = self.cli(*args, "--json")
        assert code == 0, stdout + stderr
        return json.loads(stdout)


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The promises of :func:`make_promises`, on the embedded server or in resonate.sql."""
    tmp = tmp_path_factory.mktemp(f"promises-{request.param}")
    if request.param == "embedded":
        procs = Processes(log_dir=tmp, base_env=isolated_env(tmp / "run"))
        try:
            _, url = procs.start_server(db=str(tmp / "server.db"))
            endpoint = HttpEndpoint(url, None, 10.0, None)
            try:
                make_promises(endpoint.ask)
            finally:
                endpoint.close()
            yield Server("embedded", url, tmp)
        finally:
            procs.stop_all()
        return
    if not os.environ.get(RESONATE_SQL_ENV):
        pytest.skip(f"{RESONATE_SQL_ENV} is not set (it names resonate.sql)")
    cluster: ResonateCluster = request.getfixturevalue("resonate_cluster")
    dsn = cluster.database("promises")
    tables = PostgresTables(dsn, None, 10.0)
    try:
        make_promises(tables.ask)
    finally:
        tables.close()
    yield Server("postgres", dsn, tmp)


def ids(answer: dict[str, Any]) -> list[str]:
    return [promise["id"] for promise in answer["promises"]]


def test_search_lists_matching_ids_newest_first(server: Server) -> None:
    everything = server.json("promises", "search", "*")
    assert ids(everything) == list(reversed(CREATED_IN_ORDER))
    assert everything["matched"] == len(CREATED_IN_ORDER)
    shop = server.json("promises", "search", "shop-*")
    assert ids(shop) == ["shop-4", "shop-3", "shop-2:charge", "shop-2", "shop-1"]
    assert ids(server.json("promises", "search", "shop-2*")) == ["shop-2:charge", "shop-2"]
    assert ids(server.json("promises", "search", "*:charge")) == ["shop-2:charge"]
    assert ids(server.json("promises", "search", "shop-1")) == ["shop-1"]
    assert ids(server.json("promises", "search", "nothing-*")) == []


def test_search_by_state_reads_a_promise_past_its_timeout_as_timed_out(server: Server) -> None:
    def found(state: str) -> list[str]:
        return ids(server.json("promises", "search", "*", "--state", state))

    assert found("pending") == ["shop-1"]
    assert found("resolved") == ["shop-2:charge", "shop-2"]
    assert found("rejected") == ["late-1", "shop-4", "shop-3"]
    assert found("timedout") == ["late-1"]
    assert found("canceled") == ["shop-4"]


def test_the_limit_keeps_the_newest_and_says_how_many_matched(server: Server) -> None:
    answer = server.json("promises", "search", "shop-*", "--limit", "2")
    assert ids(answer) == ["shop-4", "shop-3"]
    assert answer["matched"] == 5
    code, table, _ = server.cli("promises", "search", "shop-*", "--limit", "2")
    assert code == 0
    assert "5 promises match 'shop-*'; the newest 2 shown" in table


def test_the_table_shows_id_function_state_and_times(server: Server) -> None:
    code, table, _ = server.cli("promises", "search", "shop-2*")
    assert code == 0
    header, *rows = [line.split() for line in table.splitlines() if line.strip()]
    assert header == ["id", "function", "state", "created", "settled"]
    charge, parent = rows[1], rows[2]  # rows[0] is the rule under the header
    assert charge[:3] == ["shop-2:charge", "bar", "resolved"]
    assert parent[:3] == ["shop-2", "foo", "resolved"]
    assert len(charge) == 7  # a date and a time each for created and settled
    code, pending, _ = server.cli("promises", "search", "shop-1")
    assert pending.splitlines()[2].split()[-1] == "-"  # not settled


def test_get_shows_a_resolved_step_with_its_param_and_value(server: Server) -> None:
    promise = server.json("promises", "get", "shop-2:charge")
    assert promise["id"] == "shop-2:charge"
    assert (promise["function"], promise["group"]) == ("bar", "service-b")
    assert promise["target"] == "poll://any@service-b"
    assert promise["state"] == "resolved"
    assert promise["param"]["args"] == [2]
    assert promise["value"] == {"charged": 2, "currency": "EUR"}
    assert promise["error"] is None
    assert promise["tags"]["resonate:parent"] == "shop-2"
    assert promise["created_at"] <= promise["settled_at"] < promise["timeout_at"]

    code, text, _ = server.cli("promises", "get", "shop-2:charge")
    assert code == 0
    assert '"currency": "EUR"' in text  # pretty-printed JSON, a key a line
    for field in ("function", "group", "target", "state", "param", "value", "tags", "timeout"):
        assert any(line.split()[:1] == [field] for line in text.splitlines()), field


def test_get_shows_why_a_promise_did_not_resolve(server: Server) -> None:
    rejected = server.json("promises", "get", "shop-3")
    assert rejected["state"] == "rejected"
    assert rejected["error"] == "card declined"
    code, text, _ = server.cli("promises", "get", "shop-3")
    assert code == 0
    assert "card declined" in text
    assert "(left out)" in text  # the pickled exception is not shown
    late = server.json("promises", "get", "late-1")
    assert (late["state"], late["error"]) == ("rejected_timedout", "the invocation timed out")
    assert late["param"] == {"order": 5} and late["function"] is None


def test_get_of_no_such_promise_is_exit_1_saying_so(server: Server) -> None:
    code, stdout, _ = server.cli("promises", "get", "nobody", "--json")
    assert code == 1
    assert "no promise with id 'nobody'" in json.loads(stdout)["error"]


def test_a_command_in_a_process_of_its_own(server: Server) -> None:
    done = subprocess.run(
        [*ASYNCRPC, "promises", "search", "shop-*", "--state", "resolved", "--json"],
        env=isolated_env(server.tmp / "run", RESONATE_URL=server.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert ids(json.loads(done.stdout)) == ["shop-2:charge", "shop-2"]
