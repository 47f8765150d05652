"""The `asyncrpc` command line: one module per family of commands.

Commands stay thin: they parse options and call plain functions of the layers
below (ops, terminal, the demo, the dashboard), so nothing below depends on how a
command is spelled; only the entry points sit above. Importing a command module
registers its commands on the Typer application (:mod:`asyncrpc.cli.application`).

A run (:func:`main`, the `asyncrpc` script and `python -m asyncrpc`) imports
only the module of the command it runs, so `asyncrpc status` pays neither for
the demo's imports nor for Typer reading the options of every other command.
``asyncrpc.cli.app`` is the application with every command (for tests, `--help`
and shell completion).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

#: The module (in this package) that registers each command.
COMMAND_MODULES: dict[str, str] = {
    "up": "up_commands",
    "down": "up_commands",
    "status": "status_commands",
    "ps": "status_commands",
    "invoke": "invoke_commands",
    "call": "invoke_commands",
    "kill": "replica_commands",
    "start": "replica_commands",
    "restart": "replica_commands",
    "logs": "logs_commands",
    "ui": "status_commands",
    "node": "node_commands",
    "server": "server_commands",
    "postgres": "server_commands",
    "tree": "tree_commands",
    "promises": "promises_commands",
    "schedules": "schedules_commands",
    "demo": "demo_commands",
}


def load_commands(args: Sequence[str] = ()) -> typer.Typer:
    """The application with the command ``args`` name registered (all of them when none is)."""
    name = next((arg for arg in args if not arg.startswith("-")), "")
    wanted = COMMAND_MODULES.get(name)
    for module in [wanted] if wanted else dict.fromkeys(COMMAND_MODULES.values()):
        importlib.import_module(f"{__name__}.{module}")
    from asyncrpc.cli.application import app

    return app


def main() -> None:
    load_commands(sys.argv[1:])()


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMAND_MODULES", "app", "load_commands", "main"]
