"""`asyncrpc node NAME`: run one worker node, or the gateway, in the foreground."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import parse_port, seconds_option
from asyncrpc.lesson import topology
from asyncrpc.runtime import config

NODE_HELP = ", ".join(f"{n.name} ({n.function} in {n.group})" for n in topology.NODES.values())


@app.command("node")
def node_command(
    name: Annotated[
        str,
        typer.Argument(
            help=f"Which node: {NODE_HELP}; or '{topology.GATEWAY}' for the HTTP gateway.",
            show_default=False,
        ),
    ],
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server-url",
            help=f"Resonate server URL (default: ${config.ENV_SERVER_URL}, "
            f"else {config.DEFAULT_SERVER_URL})",
            show_default=False,
        ),
    ] = None,
    node_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help=f"Unique id (unicast address) (default: ${config.ENV_NODE_ID}, else NAME-<4 hex>)",
            show_default=False,
        ),
    ] = None,
    delay: Annotated[
        float | None,
        typer.Option(
            "--delay",
            parser=seconds_option(),
            metavar="SECONDS",
            help="Crash demo: sleep this many seconds (durably, ctx.sleep) before returning "
            f"(default: ${config.ENV_DELAY}, else 0). Worker nodes only.",
            show_default=False,
        ),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(
            "--ttl",
            parser=seconds_option(positive=True),
            metavar="SECONDS",
            help="Task lease in seconds: how soon a crashed node's step goes to another "
            f"(default: ${config.ENV_TTL}, else {config.DEFAULT_NODE_TTL:g}). Worker nodes only.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help=f"Gateway only: address to listen on (default: {config.DEFAULT_HOST})"
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            parser=parse_port,
            metavar="PORT",
            help="Gateway only: port to listen on "
            f"(default: ${config.ENV_GATEWAY_PORT}, else {config.DEFAULT_GATEWAY_PORT})",
        ),
    ] = None,
) -> None:
    """Run one node in the foreground; it prints one ready line when it can take work.

    Stop it with Ctrl-C (or SIGTERM). Like the original example's `uv run a` in its own terminal.
    """
    # Imported here so other commands do not pay for the SDK and FastAPI at start-up.
    from asyncrpc.node import worker as node
    from asyncrpc.runtime.process import SettingsError
    from asyncrpc.runtime.serving import PortInUse

    env = os.environ
    try:
        if name == topology.GATEWAY:
            # FastAPI: only the gateway pays for it.
            from asyncrpc.gateway.main import run as run_gateway
            from asyncrpc.gateway.settings import gateway_settings

            if delay is not None or ttl is not None:
                raise SettingsError("--delay and --ttl apply to worker nodes, not the gateway")
            settings = gateway_settings(
                env, host=host, port=port, server_url=server_url, gateway_id=node_id
            )
            raise typer.Exit(run_gateway(settings))
        if host is not None or port is not None:
            raise SettingsError(
                f"--host and --port apply to the gateway only (asyncrpc node {topology.GATEWAY})"
            )
        worker = node.node_settings(
            name, env, server_url=server_url, node_id=node_id, delay=delay, ttl=ttl
        )
    except (SettingsError, PortInUse) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(node.run(worker))
