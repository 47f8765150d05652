"""End-to-end: a running system seen through `--json`, `tree` and `promises`, and `/metrics`.

One system for the module: `asyncrpc up await-chain --detach --json` (server,
gateway, a, b, c; c's step sleeps 2 s durably) on free ports, with RESONATE_TOKEN
set, so the token guards `/metrics` as it guards everything. Beside it runs a
decoy: another `asyncrpc server`, named by RESONATE_URL, holding a promise with
the very id of one of the system's invocations, which `tree` and `promises` must
not read unless told to with --server-url. Every command runs as a person types it,
in a process of its own; at the end `down --json` stops it all, and whatever the
launcher ever listed is killed if still running, also when a test failed.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asyncrpc.protocol.answers import envelope
from harness.isolation import free_port
from harness.launched import Launched, launched
from harness.processes import session

TOKEN = "e2e-token"
#: The invocation both the system and the decoy hold a promise for.
SHARED_ID = "shared-1"


@dataclass
class System:
    launched: Launched
    decoy_url: str
    up: subprocess.CompletedProcess[str]

    @property
    def server_url(self) -> str:
        return self.launched.server_url

    @property
    def gateway_url(self) -> str:
        return self.launched.gateway_url

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.launched.cli(*args, timeout=timeout)

    def json(self, *args: str, code: int = 0) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == code, result.stdout + result.stderr
        return json.loads(result.stdout)

    def metrics(
        self, url: str, token: str | None = TOKEN
    ) -> dict[tuple[str, tuple[Any, ...]], float]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(f"{url}/metrics", headers=headers, timeout=30, trust_env=False)
        assert response.status_code == 200, response.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    decoy_port = free_port()
    decoy_url = f"http://127.0.0.1:{decoy_port}"
    env = {"RESONATE_TOKEN": TOKEN, "RESONATE_URL": decoy_url, "COLUMNS": "200"}
    with (
        launched("asyncrpc-json-e2e-", env=env) as run,
        session(run.run_dir.parent / "decoy", run.env) as procs,
    ):
        procs.start_server(db=":memory:", port=decoy_port)
        decoy = httpx.post(
            f"{decoy_url}/",
            json=envelope(
                "promise.create",
                TOKEN,
                id=SHARED_ID,
                timeoutAt=2**50,
                tags={"resonate:origin": SHARED_ID},
            ),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert decoy.status_code == 200, decoy.text
        # The decoy answers at RESONATE_URL: unset here, so the system runs its own server.
        up = run.up(
            *("await-chain", "--json", "--no-dashboard", "--delay", "c=2"),
            env={"RESONATE_URL": ""},
        )
        yield System(run, decoy_url, up)


def test_up_detach_shows_progress_and_reports_json(system: System) -> None:
    snapshot = json.loads(system.up.stdout)
    assert snapshot["running"] is True and snapshot["phase"] == "ready"
    assert {node["name"] for node in snapshot["nodes"]} == {
        "server",
        "gateway",
        "a.1",
        "b.1",
        "c.1",
    }
    # Not a terminal: a plain line per replica as it becomes ready, on stderr.
    for name in ("server", "gateway", "a.1", "b.1", "c.1"):
        assert f"{name} is ready" in system.up.stderr


def test_status_json_is_the_running_snapshot(system: System) -> None:
    status = system.json("status")
    assert status["running"] is True
    assert status["server_url"] == system.server_url
    assert all(node["state"] == "running" for node in status["nodes"])


def test_an_invoke_that_times_out_exits_124_and_the_invocation_goes_on(system: System) -> None:
    error = system.json("invoke", "await-chain", "--id", SHARED_ID, "--timeout", "0.5", code=124)
    assert error["exit_code"] == 124
    assert f"--id {SHARED_ID}" in error["error"]
    result = system.json("invoke", "await-chain", "--id", SHARED_ID, "--timeout", "120")
    assert (result["id"], result["result"]) == (SHARED_ID, 3)


def test_tree_and_promises_read_the_run_directorys_system_not_resonate_url(
    system: System,
) -> None:
    ours = system.json("tree", SHARED_ID)
    assert (ours["function"], ours["state"], ours["value"]) == ("foo", "resolved", 3)
    theirs = system.json("tree", SHARED_ID, "--server-url", system.decoy_url)
    assert (theirs["function"], theirs["state"]) == (None, "pending")

    steps = system.json("promises", "search", f"{SHARED_ID}*")
    functions = [promise["function"] for promise in steps["promises"]]
    assert {"foo", "bar", "baz"} <= set(functions)
    root = system.json("promises", "get", SHARED_ID)
    assert (root["function"], root["value"], root["group"]) == ("foo", 3, "service-a")


def test_schedules_json_lists_the_run_directorys_schedules(system: System) -> None:
    assert system.json("schedules") == {"pattern": "*", "schedules": []}
    for name, cron in (("nightly-report", "0 3 * * *"), ("every-minute", "* * * * *")):
        body = {
            "kind": "schedule.create",
            "head": {"corrId": name, "version": "1", "auth": TOKEN},
            "data": {
                "id": name,
                "cron": cron,
                "promiseId": "{{.id}}.{{.timestamp}}",
                "promiseTimeout": 60_000,
                "promiseTags": {"resonate:target": "poll://any@service-a"},
            },
        }
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.post(f"{system.server_url}/", json=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
    listed = system.json("schedules")
    assert [s["id"] for s in listed["schedules"]] == ["every-minute", "nightly-report"]
    nightly = system.json("schedules", "nightly-*")["schedules"]
    assert [(s["id"], s["cron"], s["group"]) for s in nightly] == [
        ("nightly-report", "0 3 * * *", "service-a")
    ]
    assert nightly[0]["next_run_at"] > nightly[0]["created_at"]
    assert nightly[0]["last_run_at"] is None
    # --server-url reads another server: the decoy holds none.
    assert system.json("schedules", "--server-url", system.decoy_url)["schedules"] == []


def test_kill_start_restart_and_logs_in_json(system: System) -> None:
    assert system.json("kill", "c") == {"signal": "KILL", "killed": ["c.1"]}
    started = system.json("start", "c")
    assert started["started"] == ["c.1"] and started["already_running"] == []
    assert isinstance(started["pids"]["c.1"], int)
    assert system.json("restart", "b") == {"restarted": ["b.1"]}
    lines = system.cli("logs", "a", "--json", "-n", "3")
    assert lines.returncode == 0, lines.stderr
    entries = [json.loads(line) for line in lines.stdout.splitlines()]
    assert entries and all(entry["replica"] == "a.1" for entry in entries)


def test_metrics_want_the_token_and_count_what_happened(system: System) -> None:
    for url in (system.server_url, system.gateway_url):
        refused = httpx.get(f"{url}/metrics", timeout=30, trust_env=False)
        assert refused.status_code == 401, url

    server_before = system.metrics(system.server_url)
    gateway_before = system.metrics(system.gateway_url)
    resolved = (
        "asyncrpc_gateway_invocations_total",
        (("flow", "await-chain"), ("outcome", "resolved")),
    )
    # The timed-out invoke above left a 202 behind it.
    pending = (
        "asyncrpc_gateway_invocations_total",
        (("flow", "await-chain"), ("outcome", "pending")),
    )
    assert gateway_before.get(pending, 0) >= 1
    assert gateway_before[("asyncrpc_gateway_server_connected", ())] == 1

    system.json("invoke", "await-chain", "--id", "metrics-1", "--timeout", "120")

    server_after = system.metrics(system.server_url)
    gateway_after = system.metrics(system.gateway_url)
    assert gateway_after[resolved] == gateway_before.get(resolved, 0) + 1
    count = ("asyncrpc_gateway_invocation_duration_seconds_count", (("flow", "await-chain"),))
    assert gateway_after[count] > gateway_before[count]

    def answered(samples: dict[tuple[str, tuple[Any, ...]], float]) -> dict[str, float]:
        by_kind: dict[str, float] = {}
        for (name, labels), count in samples.items():
            if name == "asyncrpc_server_requests_total":
                kind = dict(labels)["kind"]
                by_kind[kind] = by_kind.get(kind, 0) + count
        return by_kind

    before, after = answered(server_before), answered(server_after)
    # Each of the three steps is a promise created and a task that finished.
    assert after["promise.create"] >= before.get("promise.create", 0) + 1
    assert sum(after.values()) >= sum(before.values()) + 6
    # Each step's execute carried its lease: no node sent the server a task.acquire.
    assert after.get("task.acquire", 0) == before.get("task.acquire", 0)
    promises = ("asyncrpc_server_promises", (("state", "resolved"),))
    assert server_after[promises] >= server_before[promises] + 3  # foo, bar, baz
    for group in ("service-a", "service-b", "service-c", "gateway"):
        assert server_after[("asyncrpc_server_poll_streams", (("group", group),))] >= 1


def test_down_json_stops_everything_and_status_then_says_nothing_runs(system: System) -> None:
    down = system.json("down")
    assert down["nothing_was_running"] is False
    assert "server" in down["stopped"] or "supervisor" in down["stopped"]
    time.sleep(0.1)
    status = system.json("status", code=1)
    assert status["running"] is False
