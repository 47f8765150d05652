"""Each command is registered by the module that COMMAND_MODULES names for it.

A CLI run imports only that module (tests/e2e/test_cli_lazy.py checks it in a fresh
process), so the map must name the right one.
"""

from __future__ import annotations

import typer

from asyncrpc.cli import COMMAND_MODULES, app


def registered(application: typer.Typer) -> dict[str, str]:
    """Every top-level command name -> the module that registers it."""
    found = {}
    for command in application.registered_commands:
        assert command.callback is not None
        name = command.name or command.callback.__name__.replace("_", "-")
        found[name] = command.callback.__module__
    for group in application.registered_groups:
        assert group.typer_instance is not None and group.typer_instance.info.name
        module = group.typer_instance.registered_commands[0].callback.__module__  # type: ignore[union-attr]
        found[str(group.typer_instance.info.name)] = module
    return found


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    expected = {name: f"asyncrpc.cli.{module}" for name, module in COMMAND_MODULES.items()}
    assert registered(app) == expected
