"""The Typer application every command module adds its commands to.

Shell completion comes from Typer (`asyncrpc --install-completion` for bash,
zsh, fish or PowerShell); `asyncrpc --version` reads the installed package's
metadata, so it always matches what runs.

A command line with `--json` gets every error as one JSON object on stdout,
``{"error": message, "exit_code": N}``, and exits with that code: the errors of
the commands themselves through :func:`asyncrpc.cli.reporting.reported`, and the
usage errors Click finds before a command runs (a bad option value, a missing
argument) through :class:`JsonErrors`, the application's group.
"""

import json
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

#: The option that asks a command for JSON, on its output and on its errors.
JSON_FLAG = "--json"
#: True while a command line with `--json` runs (set by :class:`JsonErrors`).
_json_requested: ContextVar[bool] = ContextVar("json_requested", default=False)


def json_requested() -> bool:
    """Whether the command line that runs asked for JSON."""
    return _json_requested.get()


def json_error(message: str, exit_code: int) -> None:
    """An error as a script reads it: one JSON object on stdout."""
    print(json.dumps({"error": message, "exit_code": exit_code}), flush=True)


class JsonErrors(TyperGroup):
    """The command group: with `--json` on the command line, a usage error prints as JSON.

    Without `--json` Typer shows its usual box on stderr; with it, the same message
    and exit code (2) leave as :func:`json_error`, so a script that asked for JSON
    never has to parse text.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or JSON_FLAG not in argv:
            return super().main(
                argv, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        requested = _json_requested.set(True)
        try:
            code = super().main(argv, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as error:  # Click's usage errors, as Typer raises them
            json_error(error.format_message(), error.exit_code)
            sys.exit(error.exit_code)
        except typer.Abort:
            json_error("aborted", 1)
            sys.exit(1)
        finally:
            _json_requested.reset(requested)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="asyncrpc",
    help="Resonate's Async RPC example: three request flows across processes, "
    "crash recovery you can watch.",
    no_args_is_help=True,
    add_completion=True,
    cls=JsonErrors,
    rich_markup_mode="rich",
)


def package_version() -> str:
    """The installed asyncrpc's version, e.g. `0.1.0`."""
    from importlib import metadata  # only --version reads it: every other run skips the import

    return metadata.version("asyncrpc")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"asyncrpc {package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Resonate's Async RPC example: three request flows across processes, crash recovery
    you can watch. Start with `asyncrpc up`, then `asyncrpc invoke await-chain`."""
