"""The three flows through the real gateway, server and nine worker processes.

One system (server, gateway, nodes a..i) is started for the whole module and
stopped at its end; each test uses its own invocation ids so the tests do not
depend on each other's order.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asyncrpc.lesson.topology import FLOWS, NODES
from harness.isolation import isolated_env
from harness.processes import Process, Processes
from harness.system import start_system
from harness.waiting import http_get, wait_until
from tests.support.gateway import post

AWAIT_CHAIN = FLOWS["await-chain"]
DETACHED_CHAIN = FLOWS["detached-chain"]
FAN_OUT = FLOWS["fan-out"]


class System:
    def __init__(self, gateway_url: str, nodes: dict[str, Process]) -> None:
        self.gateway_url = gateway_url
        self.nodes = nodes

    def count(self, node: str, text: str) -> int:
        """How many times ``text`` appears in a node's output so far."""
        return self.nodes[node].output().count(text)

    def graph(self, invocation_id: str) -> list[dict]:
        response = http_get(f"{self.gateway_url}/invocations/{invocation_id}/graph", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["steps"]

    def wait_for_cog(self, invocation_id: str) -> dict:
        """The detached chain's last step, once it has resolved."""

        def cog_resolved() -> dict | None:
            steps = [step for step in self.graph(invocation_id) if step.get("function") == "cog"]
            return steps[0] if steps and steps[0]["state"] == "resolved" else None

        return wait_until(cog_resolved, 60, f"cog of {invocation_id} to resolve")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    base = tmp_path_factory.mktemp("flows-e2e")
    (base / "logs").mkdir()
    procs = Processes(log_dir=Path(base / "logs"), base_env=isolated_env(base / "run"))
    try:
        started = start_system(procs, nodes=list(NODES))
        yield System(started.gateway_url, started.nodes)
    finally:
        procs.stop_all()


def test_await_chain_answers_exactly_like_the_original(system: System) -> None:
    response = post(system.gateway_url, AWAIT_CHAIN.route)

    assert response.status_code == 200
    assert response.content == b'{"message":3}'
    assert response.headers["X-Invocation-Id"] == AWAIT_CHAIN.default_id
    for node, function in (("a", "foo"), ("b", "bar"), ("c", "baz")):
        assert system.count(node, f"running {function}") >= 1


def test_fan_out_workflow_answers_exactly_like_the_original(system: System) -> None:
    response = post(system.gateway_url, FAN_OUT.route)

    assert response.status_code == 200
    assert response.content == b'{"message":3}'
    assert response.headers["X-Invocation-Id"] == FAN_OUT.default_id
    assert system.count("h", "running rax") >= 1
    assert system.count("i", "running dop") >= 1


def test_detached_chain_answers_at_once_and_cog_gets_3(system: System) -> None:
    response = post(system.gateway_url, DETACHED_CHAIN.route)

    assert response.status_code == 200
    assert response.json() == {"message": "detached-chain started"}
    assert response.headers["X-Invocation-Id"] == DETACHED_CHAIN.default_id
    cog = system.wait_for_cog(DETACHED_CHAIN.default_id)
    assert cog["result"] == 3
    wait_until(lambda: system.count("f", "cog received 3"), 10, "f to log 'cog received 3'")
    functions = {step["function"] for step in system.graph(DETACHED_CHAIN.default_id)}
    assert functions == {"qux", "quz", "cog"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_original_curl_command_prints_the_message(system: System) -> None:
    url = f"{system.gateway_url}{AWAIT_CHAIN.route}"
    completed = subprocess.run(
        ["curl", "-s", "-X", "POST", url], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == '{"message":3}'


def test_same_id_again_returns_the_same_result_without_running_anything(system: System) -> None:
    first = post(system.gateway_url, AWAIT_CHAIN.route, id="idem-await")
    assert first.json() == {"message": 3}
    assert first.headers["X-Invocation-Reattached"] == "false"
    runs = {
        n: system.count(n, f"running {f}") for n, f in (("a", "foo"), ("b", "bar"), ("c", "baz"))
    }
    steps = system.graph("idem-await")

    second = post(system.gateway_url, AWAIT_CHAIN.route, id="idem-await")

    assert second.status_code == 200
    assert second.json() == {"message": 3}
    assert second.headers["X-Invocation-Reattached"] == "true"
    assert {
        n: system.count(n, f"running {f}") for n, f in (("a", "foo"), ("b", "bar"), ("c", "baz"))
    } == runs
    assert system.graph("idem-await") == steps
    assert len(steps) == 3 and all(step["state"] == "resolved" for step in steps)


def test_same_id_again_for_the_fan_out_and_the_detached_chain(system: System) -> None:
    assert post(system.gateway_url, FAN_OUT.route, id="idem-fan").json() == {"message": 3}
    assert post(system.gateway_url, DETACHED_CHAIN.route, id="idem-det").status_code == 200
    system.wait_for_cog("idem-det")
    runs = {
        "g": system.count("g", "running zim"),
        "h": system.count("h", "running rax"),
        "d": system.count("d", "running qux"),
        "f": system.count("f", "cog received"),
    }
    graphs = {id: system.graph(id) for id in ("idem-fan", "idem-det")}

    again_fan = post(system.gateway_url, FAN_OUT.route, id="idem-fan")
    again_det = post(system.gateway_url, DETACHED_CHAIN.route, id="idem-det")

    assert again_fan.json() == {"message": 3}
    assert again_fan.headers["X-Invocation-Reattached"] == "true"
    assert again_det.json() == {"message": "detached-chain started"}
    assert again_det.headers["X-Invocation-Reattached"] == "true"
    assert {id: system.graph(id) for id in graphs} == graphs
    assert {
        "g": system.count("g", "running zim"),
        "h": system.count("h", "running rax"),
        "d": system.count("d", "running qux"),
        "f": system.count("f", "cog received"),
    } == runs


def test_invocation_can_be_read_back(system: System) -> None:
    assert post(system.gateway_url, AWAIT_CHAIN.route, id="read-back").status_code == 200

    response = httpx.get(f"{system.gateway_url}/invocations/read-back", timeout=30)

    assert response.status_code == 200
    assert response.json() == {
        "id": "read-back",
        "state": "resolved",
        "result": 3,
        "function": "foo",
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "needle"),
    [
        ("GET", "/invocations/never-started", 404, "no invocation with id 'never-started'"),
        ("POST", "/await-chain?id=bad%3Aid", 400, "is not valid"),
        ("POST", "/await-chain?wait=-1", 400, "wait"),
        ("POST", "/await-chain?wait=abc", 400, "wait"),
        ("GET", "/await-chain", 405, "POST /await-chain"),
        ("POST", "/no-such-flow", 404, "POST /fan-out-workflow"),
    ],
)
def test_bad_requests_get_json_errors(
    system: System, method: str, path: str, status: int, needle: str
) -> None:
    response = httpx.request(method, f"{system.gateway_url}{path}", timeout=30)

    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert needle in body["error"]


def test_an_id_of_another_flow_is_a_conflict(system: System) -> None:
    assert post(system.gateway_url, AWAIT_CHAIN.route, id="taken").status_code == 200

    response = post(system.gateway_url, FAN_OUT.route, id="taken")

    assert response.status_code == 409
    assert "already used by foo" in response.json()["error"]


def test_openapi_docs_are_served(system: System) -> None:
    assert httpx.get(f"{system.gateway_url}/docs", timeout=30).status_code == 200
    schema = httpx.get(f"{system.gateway_url}/openapi.json", timeout=30).json()
    assert {flow.route for flow in FLOWS.values()} <= set(schema["paths"])
