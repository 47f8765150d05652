"""`asyncrpc server`: run the embedded Resonate server."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from asyncrpc import config
from asyncrpc.cli.app import app
from asyncrpc.cli.options import parse_port


@app.command()
def server(
    host: Annotated[
        str, typer.Option(help="Address to bind. Keep 127.0.0.1 unless you mean it.")
    ] = (config.DEFAULT_HOST),
    port: Annotated[
        int,
        typer.Option(
            parser=parse_port,
            metavar="PORT",
            envvar=config.ENV_SERVER_PORT,
            help="Port to listen on.",
        ),
    ] = (config.DEFAULT_SERVER_PORT),
    db: Annotated[
        str | None,
        typer.Option(
            help="SQLite file for durable state, or :memory:. Default: RUN_DIR/server.db."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=config.ENV_TOKEN,
            help="Require 'Authorization: Bearer TOKEN' on requests and poll streams. Prefer "
            f"${config.ENV_TOKEN}: any local user can read a command line (ps).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run a Resonate server (HTTP + SSE protocol, durable on SQLite).

    Any resonate-sdk worker can use it: point RESONATE_URL at it. Killing it
    loses nothing that was acknowledged; restart it on the same --db and every
    flow in flight continues.
    """
    from asyncrpc.server.main import default_db_path, serve
    from asyncrpc.server.store import StoreError
    from asyncrpc.serving import PortInUse

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("use debug, info, warning or error", param_hint="--log-level")
    database = db or default_db_path(config.run_dir(os.environ))
    try:
        serve(host, port, database, token or None, log_level)
    except (PortInUse, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
