"""What the commands that drive the supervisor share: how they print, report errors and find it.

Every foreseen failure is a :class:`~asyncrpc.runtime.errors.CommandError`;
:func:`reported` prints it as one clear message and exits with its code (2 for
a wrong name or value, 124 for a call that timed out, 1 otherwise). A command given
`--json` gets the error as one JSON object on stdout
instead, and the launcher's own lines on stderr, so stdout holds nothing but JSON.
rich and the heavier modules of ops and supervise are imported on first use, so a
command loads only what it prints with.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from asyncrpc.cli.application import json_error, json_requested
from asyncrpc.runtime import config
from asyncrpc.runtime.errors import CommandError
from asyncrpc.supervise.rundir import RunDir

if TYPE_CHECKING:
    from rich.console import Console

    from asyncrpc.supervise.control_client import ControlClient


@functools.cache
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def json_mode() -> bool:
    """Whether the command that runs was given `--json`."""
    return json_requested()


def print_json(data: Any) -> None:
    """What a command reports, for scripts: JSON on stdout."""
    print(json.dumps(data, indent=1), flush=True)


def fail(message: str, exit_code: int) -> NoReturn:
    """Report an error (on stderr, or as JSON on stdout with `--json`) and exit with the code.

    The message may quote what a person typed; it is printed literally, never as markup.
    rich is imported only when there is an error to print (a command that succeeds
    with a plain line never loads it: about a third of such a command's start).
    """
    if json_mode():
        json_error(message, exit_code)
    else:
        from rich.markup import escape

        console(stderr=True).print(
            f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True
        )
    raise typer.Exit(exit_code)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn a CommandError into its message and its exit code (see :func:`fail`)."""
    try:
        yield
    except CommandError as error:
        fail(str(error), error.exit_code)


def run_dir_of(run_dir: Path | None) -> RunDir:
    """The run directory ``--run-dir`` names, else $ASYNCRPC_RUN_DIR's, else ./.asyncrpc."""
    return RunDir((run_dir or config.run_dir(os.environ)).resolve())


def client_of(run_dir: Path | None) -> ControlClient:
    """A control client for the supervisor of that run directory."""
    from asyncrpc.supervise.control_client import connect

    return connect(run_dir_of(run_dir))


def say(message: str) -> None:
    """A line from the launcher itself, with its prefix (on stderr under `--json`)."""
    from asyncrpc.terminal import status_table as view

    view.launcher_line(console(stderr=json_mode()), message)
