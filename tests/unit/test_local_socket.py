"""A server on loopback has a second door, a Unix socket named by its port, for its own user."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest

from asyncrpc.runtime import local_socket
from asyncrpc.runtime.serving import free_port

pytestmark = pytest.mark.skipif(not local_socket.supported(), reason="Linux only")


@contextlib.contextmanager
def listening(host: str = "127.0.0.1") -> Iterator[tuple[int, socket.socket | None]]:
    port = free_port()
    sock = local_socket.listen(host, port)
    try:
        yield port, sock
    finally:
        if sock is not None:
            sock.close()


def reached(host: str, port: int) -> bool:
    async def attempt() -> bool:
        sock = await local_socket.connect(host, port)
        if sock is None:
            return False
        sock.close()
        return True

    return asyncio.run(attempt())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_a_loopback_url_reaches_the_server_through_its_local_socket(host: str) -> None:
    with listening() as (port, sock):
        assert sock is not None
        assert reached(host, port)


def test_another_host_or_port_goes_over_tcp() -> None:
    with listening() as (port, _):
        assert not reached("10.1.2.3", port)
        assert not reached("db.internal", port)
        assert not reached("127.0.0.1", port + 1 if port < 65535 else port - 1)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_server_on_every_address_has_one_too(host: str) -> None:
    with listening(host) as (port, sock):
        assert sock is not None and reached("127.0.0.1", port)


def test_a_server_on_another_address_has_none() -> None:
    with listening("10.1.2.3") as (_, sock):
        assert sock is None


def test_a_name_taken_leaves_the_second_server_without_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with listening() as (port, first):
        assert first is not None
        second = local_socket.listen("127.0.0.1", port)
        assert second is None
    assert "local processes use TCP" in caplog.text
