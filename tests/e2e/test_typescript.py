"""Workers in another language: the TypeScript SDK next to asyncrpc's Python nodes.

The example in examples/typescript/ (``@resonatehq/sdk``) is run as real
processes against a real ``asyncrpc server``:

- its worker serves ``baz`` in group ``service-c``, in place of node c, and the
  await chain through the gateway still answers 3;
- its client calls ``zim(1)`` on group ``service-g`` and gets 3 back from the
  Python fan-out (nodes g, h, i).

The npm packages come from ``npm install`` in the example's folder (CI runs it
in .ci/run; here it runs once when they are missing). Without npm the tests skip.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asyncrpc.lesson.topology import FLOWS
from harness.processes import READY_TIMEOUT, Process, Processes
from harness.system import start_gateway, start_node, wait_ready
from harness.waiting import http_get, wait_until
from tests.support import ROOT
from tests.support.gateway import post

EXAMPLE = ROOT / "examples" / "typescript"
NPM_INSTALL_TIMEOUT = 300


def installed(example: Path) -> bool:
    return (example / "node_modules" / "@resonatehq" / "sdk" / "package.json").is_file() and (
        example / "node_modules" / ".bin" / "tsx"
    ).is_file()


@pytest.fixture(scope="module")
def example() -> Path:
    """The example folder with its npm packages installed."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the TypeScript example needs Node.js and npm")
    if not installed(EXAMPLE):
        completed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=NPM_INSTALL_TIMEOUT,
            check=False,
        )
        assert completed.returncode == 0, f"npm install failed:\n{completed.stderr[-3000:]}"
    return EXAMPLE


def tsx(example: Path, script: str) -> list[str]:
    return [str(example / "node_modules" / ".bin" / "tsx"), str(example / script)]


def group_connected(server_url: str, group: str) -> bool:
    """True once a poll stream of ``group`` is open on the server."""
    try:
        streams = http_get(f"{server_url}/streams", timeout=2).json()["streams"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return any(stream["group"] == group for stream in streams)


@pytest.fixture
def server_url(procs: Processes) -> Iterator[str]:
    _, url = procs.start_server()
    yield url


def test_await_chain_gives_3_with_the_typescript_worker_as_node_c(
    example: Path, procs: Processes, server_url: str
) -> None:
    gateway, gateway_url = start_gateway(procs, server_url)
    nodes = [start_node(procs, name, server_url, "--id", f"{name}-1") for name in ("a", "b")]
    worker = procs.start(
        "typescript-worker",
        tsx(example, "worker.ts"),
        env={"RESONATE_URL": server_url, "RESONATE_PID": "c-ts-1"},
    )
    wait_ready(gateway, *nodes)
    wait_until(
        lambda: group_connected(server_url, "service-c") or not_dead(worker),
        READY_TIMEOUT,
        "the TypeScript worker to open its poll stream",
    )

    response = post(gateway_url, FLOWS["await-chain"].route, id="await-chain-ts")

    assert response.status_code == 200, response.text
    assert response.json() == {"message": 3}
    assert "running baz (typescript)" in worker.output()


def test_typescript_client_gets_3_from_the_python_fan_out(
    example: Path, procs: Processes, server_url: str
) -> None:
    nodes = [start_node(procs, name, server_url, "--id", f"{name}-1") for name in ("g", "h", "i")]
    wait_ready(*nodes)

    client = procs.start(
        "typescript-client",
        [*tsx(example, "client.ts"), "fan-out-ts"],
        env={"RESONATE_URL": server_url},
    )
    try:
        client.popen.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the TypeScript client did not finish in 90 s:\n{client.output()[-3000:]}")

    assert client.popen.returncode == 0, client.output()[-3000:]
    assert "zim(1) = 3 (invocation fan-out-ts)" in client.output()
    assert "running zim" in nodes[0].output()


def not_dead(process: Process) -> bool:
    """False while ``process`` runs; fails the wait at once if it exited."""
    if not process.alive():
        raise AssertionError(f"{process.name} exited early:\n{process.output()[-3000:]}")
    return False
