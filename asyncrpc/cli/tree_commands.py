"""`asyncrpc tree ID`: the durable call graph of one invocation."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.runtime import config


def launcher_server_url() -> str | None:
    """The server a running `asyncrpc up` uses, if there is one in this run directory."""
    from asyncrpc.supervise.rundir import RunDir

    state = RunDir(config.run_dir(os.environ)).read_state()
    return state.snapshot.server_url if state else None


@app.command()
def tree(
    invocation_id: Annotated[
        str, typer.Argument(metavar="ID", help="The invocation (root promise) id.")
    ],
    server_url: Annotated[
        str | None,
        typer.Option(
            help="Server to read from. Default: RESONATE_URL, else the one of `asyncrpc up`."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the durable call graph of an invocation: each promise's function, group, state,
    value and duration. Works while the flow runs (pending branches show) and after."""
    # Imported here so other commands do not pay for them at start-up.
    from rich.console import Console
    from rich.markup import escape

    from asyncrpc.protocol.errors import InvocationError
    from asyncrpc.readers.server_reader import ServerReader
    from asyncrpc.terminal.call_graph_tree import render

    url = server_url or os.environ.get(config.ENV_SERVER_URL) or launcher_server_url()
    url = config.server_url(os.environ, url)
    token = os.environ.get(config.ENV_TOKEN)
    try:
        with ServerReader(url, token) as reader:
            root = reader.call_graph(invocation_id)
    except InvocationError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(root.to_json(), indent=2))
    else:
        Console().print(render(root))
