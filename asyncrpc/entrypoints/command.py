"""The `asyncrpc` program (the script and `python -m asyncrpc`): relay a short command, or run it.

A short command (`status`, `kill`, `invoke`) is handed to the running system's
template first (:mod:`asyncrpc.supervise.command_relay`), which has the CLI
loaded; only when none takes it is the CLI imported here. So this module
imports nothing else of asyncrpc at the top: whatever it loaded would be paid
by every relayed command.
"""

from __future__ import annotations

import os
import sys

from asyncrpc.supervise.command_relay import relay


def main() -> None:
    code = relay(sys.argv[1:], os.environ, os.getcwd())
    if code is not None:
        sys.exit(code)
    from asyncrpc.cli import main as run_here

    run_here()
