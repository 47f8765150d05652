"""The resonate-pg path's plain parts: URLs, the schema option, the plan, the table reader."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from asyncrpc.lesson import topology
from asyncrpc.ops.up import UpOptions, prepare
from asyncrpc.postgres.schema import RESONATE_SQL_ENV, SchemaUnavailable, resonate_sql_path
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.readers.postgres import (
    promise_of_row,
    schedules_of_rows,
    schedules_query,
    search_query,
)
from asyncrpc.runtime import config
from asyncrpc.runtime.errors import CommandError
from asyncrpc.runtime.process import SettingsError, check_server_url
from asyncrpc.supervise.plan import POSTGRES_READY, Plan, ReplicaSpec
from harness.isolation import free_port


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgres://u:secret@db.internal/resonate?sslmode=verify-full",
        "postgresql:///resonate?host=/run/postgresql",
    ],
)
def test_postgres_urls_are_server_urls(url: str) -> None:
    assert check_server_url(url) == url
    assert config.is_postgres_url(url)


def test_other_schemes_are_refused_with_both_forms_named() -> None:
    with pytest.raises(SettingsError, match="postgresql://USER@HOST"):
        check_server_url("mysql://u:secret@db/x")
    assert not config.is_postgres_url("http://127.0.0.1:8001")


def test_a_password_never_shows() -> None:
    url = "postgresql://svc:hunter2@db:5432/resonate"
    assert config.redacted(url) == "postgresql://svc:***@db:5432/resonate"
    assert config.redacted("http://127.0.0.1:8001") == "http://127.0.0.1:8001"


def test_the_schema_comes_from_the_option_then_the_environment(tmp_path: Path) -> None:
    sql = tmp_path / "resonate.sql"
    sql.write_text("SELECT 1;")
    assert resonate_sql_path({}, sql) == sql.resolve()
    assert resonate_sql_path({RESONATE_SQL_ENV: str(sql)}) == sql.resolve()
    with pytest.raises(SchemaUnavailable, match="resonatehq/resonate-pg"):
        resonate_sql_path({})
    with pytest.raises(SchemaUnavailable, match="no such file"):
        resonate_sql_path({}, tmp_path / "missing.sql")


def test_up_server_postgres_without_a_schema_says_where_it_comes_from(tmp_path: Path) -> None:
    options = UpOptions(server="postgres", server_port=free_port(), gateway_port=free_port())
    with pytest.raises(CommandError, match="resonate-pg repository") as caught:
        prepare(options, {}, tmp_path / "run")
    assert caught.value.exit_code == 2


def test_up_server_postgres_plans_the_postgres_node_first(tmp_path: Path) -> None:
    sql = tmp_path / "resonate.sql"
    sql.write_text("SELECT 1;")
    port = free_port()
    options = UpOptions(
        targets=["await-chain"],
        server="postgres",
        schema=str(sql),
        server_port=port,
        gateway_port=free_port(),
    )
    plan = prepare(options, {}, tmp_path / "run")
    assert plan.server_node == topology.POSTGRES
    assert plan.server_url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
    assert [spec.node for spec in plan.replicas] == ["postgres", "gateway", "a", "b", "c"]
    spec = ReplicaSpec(topology.POSTGRES)
    command = plan.command(spec, "unused", None, {})
    assert command[-8:] == [
        "--data",
        str(tmp_path / "run" / "postgres"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--schema",
        str(sql),
    ]
    assert plan.ready_url(spec) is None and plan.ready_marker(spec) == POSTGRES_READY
    # SIGTERM would be Postgres's smart shutdown, waiting on nodes that may never leave.
    assert plan.stop_signal(spec) == signal.SIGINT
    assert plan.stop_signal(ReplicaSpec("b")) == signal.SIGTERM
    assert Plan.from_json(plan.to_json()).server_node == topology.POSTGRES


def test_server_postgres_and_a_server_url_exclude_each_other(tmp_path: Path) -> None:
    options = UpOptions(server="postgres", server_url="postgresql://x@127.0.0.1:1/db")
    with pytest.raises(CommandError, match="give one of them"):
        prepare(options, {}, tmp_path / "run")
    with pytest.raises(CommandError, match="valid values are embedded"):
        prepare(UpOptions(server="mysql"), {}, tmp_path / "run")
    with pytest.raises(CommandError, match="--schema applies to --server postgres"):
        prepare(UpOptions(schema="resonate.sql"), {}, tmp_path / "run")


def test_the_call_graph_query_uses_the_origin_column_and_binds_every_value() -> None:
    sql, params = search_query({ORIGIN_TAG: "order-42", "x'; DROP": "v"}, "rejected", "ord")
    assert "origin_id = %s" in sql and "tags ->> %s = %s" in sql and "state LIKE %s" in sql
    assert "order-42" not in sql and "DROP" not in sql
    assert params == ["order-42", "x'; DROP", "v", "rejected%", "ord"]
    sql, params = search_query({"resonate:target": "poll://any@a"}, None, None, newest=25)
    assert sql.endswith("ORDER BY created_at DESC, id DESC LIMIT %s")
    assert params == ["resonate:target", "poll://any@a", 25]


def test_the_schedules_read_binds_the_pattern_start_and_matches_the_rest() -> None:
    sql, params = schedules_query("nightly-*-eu")
    assert "FROM resonate.schedules WHERE starts_with(id, %s) ORDER BY id" in sql
    assert params == ["nightly-"] and "nightly" not in sql
    assert schedules_query("*")[1] == []
    tags = {"resonate:target": "poll://any@service-a"}
    rows = [
        ("nightly-a-eu", "0 3 * * *", "{{.id}}.{{.timestamp}}", 60_000, tags, 5, 99, None),
        ("nightly-b-us", "0 4 * * *", "{{.id}}", 1_000, {}, 6, 98, 50),
    ]
    [found] = schedules_of_rows(rows, "nightly-*-eu")
    assert (found.id, found.cron, found.promise_timeout, found.next_run_at) == (
        "nightly-a-eu",
        "0 3 * * *",
        60_000,
        99,
    )
    assert found.group == "service-a" and found.last_run_at is None and found.created_at == 5
    assert [s.last_run_at for s in schedules_of_rows(rows, "*")] == [None, 50]


def row(state: str, timeout_at: int, tags: dict[str, str]) -> tuple[object, ...]:
    param = "eyJmdW5jIjogImZvbyIsICJhcmdzIjogWzFdfQ=="  # base64 of {"func": "foo", "args": [1]}
    return ("p1", state, {}, param, {}, None, tags, timeout_at, 100, None)


def test_a_row_reads_as_promise_get_would_answer_it() -> None:
    pending = promise_of_row(row("pending", 10_000, {ORIGIN_TAG: "p1"}), now_ms=5_000)
    assert (pending.state, pending.function, pending.args) == (PromiseState.PENDING, "foo", (1,))
    late = promise_of_row(row("pending", 10_000, {}), now_ms=20_000)
    assert (late.state, late.settled_at) == (PromiseState.REJECTED_TIMEDOUT, 10_000)
    timer = promise_of_row(row("pending", 10_000, {"resonate:timer": "true"}), now_ms=20_000)
    assert timer.state is PromiseState.RESOLVED
