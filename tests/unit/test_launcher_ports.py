"""Port checks name the port, who holds it and the option that picks another."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise.ports import check_free, holder, port_in_use
from harness.isolation import free_port


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_listening_port_is_in_use(listening: int) -> None:
    assert port_in_use("127.0.0.1", listening)


def test_a_free_port_is_not() -> None:
    assert not port_in_use("127.0.0.1", free_port())


def test_the_holder_is_named(listening: int) -> None:
    assert holder(listening) is not None
    assert holder(listening).startswith(f"pid {os.getpid()} ")  # type: ignore[union-attr]


def test_check_free_names_every_taken_port_and_its_option(listening: int) -> None:
    free = free_port()
    with pytest.raises(CommandError) as caught:
        check_free(
            [
                ("the server", "127.0.0.1", listening, "--server-port"),
                ("the gateway", "127.0.0.1", free, "--gateway-port"),
            ]
        )
    message = str(caught.value)
    assert f"port {listening}" in message and "--server-port" in message
    assert "--gateway-port" not in message
    assert caught.value.exit_code == 1
    check_free([("the gateway", "127.0.0.1", free, "--gateway-port")])
