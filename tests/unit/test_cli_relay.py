"""Which short commands are relayed to a running system's template, and to which run directory.

The end-to-end test (tests/e2e/test_cli_relay.py) starts a system and compares
relayed commands with the same commands run in their own process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncrpc.supervise import command_relay


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["status"], {}, "/work/here/.asyncrpc"),
        (["status"], {"ASYNCRPC_RUN_DIR": "/runs/a"}, "/runs/a"),
        (["status", "--run-dir", "/runs/b"], {"ASYNCRPC_RUN_DIR": "/runs/a"}, "/runs/b"),
        (["kill", "b", "--run-dir=rel"], {}, "/work/here/rel"),
        (["status", "--run-dir"], {}, None),
    ],
)
def test_the_run_directory_is_the_one_the_cli_would_use(
    args: list[str], env: dict[str, str], expected: str | None
) -> None:
    assert command_relay.run_dir_of(args, env, "/work/here") == expected


def test_without_a_listening_template_nothing_is_relayed(tmp_path: Path) -> None:
    env = {"ASYNCRPC_RUN_DIR": str(tmp_path)}
    assert command_relay.relay(["status"], env, str(tmp_path)) is None  # no socket
    (tmp_path / command_relay.SOCKET_NAME).touch()  # a socket file nobody listens on
    assert command_relay.relay(["status"], env, str(tmp_path)) is None
    assert command_relay.relay(["up", "--detach"], env, str(tmp_path)) is None  # not relayed


def test_a_template_socket_is_this_users_only(tmp_path: Path) -> None:
    sock = command_relay.listen(str(tmp_path))
    assert sock is not None
    try:
        mode = (tmp_path / command_relay.SOCKET_NAME).stat().st_mode & 0o777
        assert mode == 0o600
    finally:
        sock.close()
    assert command_relay.listen(str(tmp_path / ("x" * 120))) is None  # too long a path
