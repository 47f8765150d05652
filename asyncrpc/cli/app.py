"""The Typer application every command module adds its commands to."""

import typer

app = typer.Typer(
    name="asyncrpc",
    help="Resonate's Async RPC example: three request flows across processes, "
    "crash recovery you can watch.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def main() -> None:
    """Resonate's Async RPC example: three request flows across processes, crash recovery
    you can watch. Start with `asyncrpc up`, then `asyncrpc call await-chain`."""
