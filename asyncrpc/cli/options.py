"""Options shared by the commands that start a system (`up`, `demo crash`): declared once."""

from __future__ import annotations

from typing import Annotated

import typer

from asyncrpc import config

ServerUrlOption = Annotated[
    str | None,
    typer.Option(
        help="Use the Resonate server at this URL instead of the embedded one (it must "
        f"answer). Without it, ${config.ENV_SERVER_URL} is used if a server answers there.",
        show_default=False,
    ),
]


def _port_option(envvar: str, what: str) -> typer.models.OptionInfo:
    """A 127.0.0.1 port: 1 to 65535, also from ``envvar``."""
    return typer.Option(min=1, max=65535, envvar=envvar, help=f"Port of {what} (127.0.0.1).")


ServerPortOption = Annotated[int, _port_option(config.ENV_SERVER_PORT, "the embedded server")]
GatewayPortOption = Annotated[int, _port_option(config.ENV_GATEWAY_PORT, "the HTTP gateway")]
DashboardPortOption = Annotated[
    int, _port_option(config.ENV_DASHBOARD_PORT, "the web dashboard the supervisor serves")
]
ReadyTimeoutOption = Annotated[
    float, typer.Option(help="Seconds each replica may take to become ready.")
]
