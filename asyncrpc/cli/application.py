"""The Typer application every command module adds its commands to.

Shell completion comes from Typer (`asyncrpc --install-completion` for bash,
zsh, fish or PowerShell); `asyncrpc --version` reads the installed package's
metadata, so it always matches what runs.
"""

from typing import Annotated

import typer

app = typer.Typer(
    name="asyncrpc",
    help="Resonate's Async RPC example: three request flows across processes, "
    "crash recovery you can watch.",
    no_args_is_help=True,
    add_completion=True,
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
