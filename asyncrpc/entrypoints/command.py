"""The `asyncrpc` program (the script and `python -m asyncrpc`): relay a short command, or run it.

A short command (`status`, `kill`, `invoke`) is handed to the running system's
template first (:mod:`asyncrpc.supervise.command_relay`), which has the CLI
loaded; only when none takes it is the CLI imported here. So this module
imports nothing else of asyncrpc at the top: whatever it loaded would be paid
by every relayed command.

An `up --detach` forks its template first (:mod:`asyncrpc.ops.up_early`), so the
template's imports run on the other core while the CLI is loaded here; the command
hands it the run once the plan is ready, or stops it before it exits.
"""

from __future__ import annotations

import os
import socket
import sys

from asyncrpc.supervise.command_relay import relay


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["up"]:
        from asyncrpc.ops import up_early

        if up_early.wanted(args, os.environ):
            up_early.start(_early_template)
        try:
            _run(args)
        finally:
            up_early.stop_unclaimed()
        return
    _run(args)


def _run(args: list[str]) -> None:
    code = relay(args, os.environ, os.getcwd())
    if code is not None:
        sys.exit(code)
    from asyncrpc.cli import main as run_here

    run_here()


def _early_template(channel: socket.socket) -> int:
    """The early template's process (:func:`asyncrpc.ops.up_early.start`)."""
    from asyncrpc.entrypoints.template import supervise_early

    return supervise_early(channel)
