"""What the commands that drive the supervisor share: how they print, report errors and find it.

Every foreseen failure is a :class:`~asyncrpc.runtime.errors.LauncherError`;
:func:`reported` prints it as one clear message and exits with its code (2 for
a wrong name or value, 1 otherwise). rich and the heavier modules of ops and supervise are
imported on first use, so a command loads only what it prints with.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from asyncrpc.runtime import config
from asyncrpc.runtime.errors import LauncherError
from asyncrpc.supervise.rundir import RunDir

if TYPE_CHECKING:
    from rich.console import Console

    from asyncrpc.supervise.control_client import ControlClient


@functools.cache
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn a LauncherError into its message on stderr and its exit code.

    The message may quote what a person typed; it is printed literally, never as markup.
    rich is imported only when there is an error to print (a command that succeeds
    with a plain line never loads it: about a third of such a command's start).
    """
    try:
        yield
    except LauncherError as error:
        from rich.markup import escape

        console(stderr=True).print(
            f"[red]error:[/red] {escape(str(error))}", markup=True, highlight=False, soft_wrap=True
        )
        raise typer.Exit(error.exit_code) from None


def run_dir_of(run_dir: Path | None) -> RunDir:
    """The run directory ``--run-dir`` names, else $ASYNCRPC_RUN_DIR's, else ./.asyncrpc."""
    return RunDir((run_dir or config.run_dir(os.environ)).resolve())


def client_of(run_dir: Path | None) -> ControlClient:
    """A control client for the supervisor of that run directory."""
    from asyncrpc.supervise.control_client import connect

    return connect(run_dir_of(run_dir))


def say(message: str) -> None:
    """A line from the launcher itself, with its prefix."""
    from asyncrpc.terminal import status_table as view

    view.launcher_line(console(), message)
