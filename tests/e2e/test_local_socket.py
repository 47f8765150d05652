"""Processes on the server's machine reach it through its local socket, never a stranger's."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess

import httpx
import psutil
import pytest

from asyncrpc.lesson.topology import FLOWS
from asyncrpc.runtime import local_socket
from asyncrpc.runtime.serving import free_port
from harness.processes import Process, Processes
from harness.system import start_system
from tests.support.gateway import post

AWAIT_CHAIN = FLOWS["await-chain"]

pytestmark = pytest.mark.skipif(not local_socket.supported(), reason="Linux only")


def tcp_to(process: Process, port: int) -> list[object]:
    """The TCP connections ``process`` (and its children) holds to ``port``."""
    root = psutil.Process(process.pid)
    return [
        connection
        for member in (root, *root.children(recursive=True))
        for connection in member.net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port
    ]


def unix_sockets(process: Process) -> int:
    root = psutil.Process(process.pid)
    return sum(
        len(member.net_connections(kind="unix"))
        for member in (root, *root.children(recursive=True))
    )


def test_the_nodes_and_the_gateway_talk_to_the_server_over_its_local_socket(
    procs: Processes,
) -> None:
    system = start_system(procs, nodes=AWAIT_CHAIN.nodes)
    response = post(system.gateway_url, AWAIT_CHAIN.route, id="local-1")
    assert response.json() == {"message": 3}
    port = system.server.port
    assert system.gateway is not None
    for process in (system.gateway, *system.nodes.values()):
        assert tcp_to(process, port) == [], f"{process.name} reaches the server over TCP"
        assert unix_sockets(process) >= 1
    # TCP stays the server's address, for every other client.
    assert httpx.get(f"{system.server_url}/healthz", timeout=10).status_code == 200


#: A process of another user that takes the abstract name of ``argv[1]``'s port first.
SQUATTER = """
import socket, sys
squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
squatter.bind(b"\\0asyncrpc-server-%d" % int(sys.argv[1]))
squatter.listen()
print("listening", flush=True)
sys.stdin.read()
"""


#: An interpreter any user may run (the project's own lies under root's home).
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to listen as another user")
@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs the system's python3")
def test_a_socket_another_user_listens_on_is_not_taken(caplog: pytest.LogCaptureFixture) -> None:
    """Anyone may bind an abstract name first: a client takes it only from its own user."""
    port = free_port()
    squatter = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", SQUATTER, str(port)],
        user=65534,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline() == "listening\n"

        async def attempt() -> socket.socket | None:
            return await local_socket.connect("127.0.0.1", port)

        assert asyncio.run(attempt()) is None
        assert "belongs to user 65534" in caplog.text
    finally:
        squatter.kill()
        squatter.communicate()
