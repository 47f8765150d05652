"""The `asyncrpc` command line: one module per family of commands.

Commands stay thin: they parse options and call plain functions elsewhere in
the package. Importing a command module registers its commands on the Typer
application (:mod:`asyncrpc.cli.typer_app`).

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
    "up": "up_cmds",
    "down": "up_cmds",
    "status": "status_cmds",
    "ps": "status_cmds",
    "invoke": "invoke_cmd",
    "call": "invoke_cmd",
    "kill": "replica_cmds",
    "start": "replica_cmds",
    "restart": "replica_cmds",
    "logs": "logs_cmd",
    "ui": "status_cmds",
    "node": "node_cmd",
    "server": "server_cmd",
    "postgres": "server_cmd",
    "tree": "tree_cmd",
    "demo": "demo_cmd",
}


def load_commands(args: Sequence[str] = ()) -> typer.Typer:
    """The application with the command ``args`` name registered (all of them when none is)."""
    name = next((arg for arg in args if not arg.startswith("-")), "")
    wanted = COMMAND_MODULES.get(name)
    for module in [wanted] if wanted else dict.fromkeys(COMMAND_MODULES.values()):
        importlib.import_module(f"{__name__}.{module}")
    from asyncrpc.cli.typer_app import app

    return app


def main() -> None:
    load_commands(sys.argv[1:])()


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMAND_MODULES", "app", "load_commands", "main"]
