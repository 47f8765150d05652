"""The exit code ``sys.exit`` asks a forked child for."""

from __future__ import annotations

from asyncrpc.runtime.forked_child import exit_code


def test_a_message_passed_to_exit_is_an_error_and_none_is_success() -> None:
    assert exit_code(SystemExit()) == 0
    assert exit_code(SystemExit(4)) == 4
    assert exit_code(SystemExit("bad input")) == 1
