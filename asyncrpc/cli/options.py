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
ServerPortOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=65535,
        envvar=config.ENV_SERVER_PORT,
        help="Port of the embedded server (127.0.0.1).",
    ),
]
GatewayPortOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=65535,
        envvar=config.ENV_GATEWAY_PORT,
        help="Port of the HTTP gateway (127.0.0.1).",
    ),
]
DashboardPortOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=65535,
        envvar=config.ENV_DASHBOARD_PORT,
        help="Port of the web dashboard (127.0.0.1), served by the supervisor.",
    ),
]
ReadyTimeoutOption = Annotated[
    float, typer.Option(help="Seconds each replica may take to become ready.")
]
