"""Options shared by several commands, and the Typer parser of every number option.

Each number option is parsed by :func:`number_option` with a reader of
:mod:`asyncrpc.runtime.numbers` (digits 0-9 only, finite, within bounds), the one
that reads environment variables and query strings too, so `nan`, `inf`, `1e400` or
a fullwidth 5 end in a usage message and exit 2, never a traceback or a nonsense value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from asyncrpc.lesson import topology
from asyncrpc.runtime import config, numbers

NODE_NAMES = ", ".join(topology.PROCESS_NAMES)
FLOW_NAMES = ", ".join(topology.flow_names())


def completes(*names: str) -> Callable[[str], list[str]]:
    """Shell completion of an argument: the ``names`` that start with what was typed."""
    return lambda incomplete: [name for name in names if name.startswith(incomplete)]


complete_nodes = completes(*topology.PROCESS_NAMES)


def number_option[T](reader: numbers.Reader[T]) -> Callable[[object], T]:
    """A Typer ``parser`` that reads an option's text with ``reader``; a bad one is exit 2."""

    def parse(value: object) -> T:
        if not isinstance(value, str):
            return value  # type: ignore[return-value]  # a default, already a number
        try:
            return reader.read(value)
        except numbers.NumberError as error:
            raise typer.BadParameter(str(error)) from None

    return parse


parse_seconds = number_option(numbers.SECONDS)
parse_positive_seconds = number_option(numbers.POSITIVE_SECONDS)
parse_port = number_option(numbers.PORT)

ServerUrlOption = Annotated[
    str | None,
    typer.Option(
        help="Use the Resonate server at this URL instead of the embedded one (it must "
        f"answer). Without it, ${config.ENV_SERVER_URL} is used if a server answers there.",
        show_default=False,
    ),
]


def _port_option(envvar: str, what: str) -> typer.models.OptionInfo:
    """A 127.0.0.1 port, read strictly, also from ``envvar``."""
    option: typer.models.OptionInfo = typer.Option(
        parser=parse_port, metavar="PORT", envvar=envvar, help=f"Port of {what} (127.0.0.1)."
    )
    return option


ServerPortOption = Annotated[
    int,
    _port_option(config.ENV_SERVER_PORT, "the server `up` starts: the embedded one, or Postgres"),
]
ServerKindOption = Annotated[
    str,
    typer.Option(
        help="The server to start: embedded (asyncrpc server, SQLite) or postgres (a local "
        "Postgres 18 with resonate.sql; nodes connect with resonate-pg).",
    ),
]
SchemaOption = Annotated[
    str | None,
    typer.Option(
        help="resonate.sql for --server postgres. Default: $ASYNCRPC_RESONATE_SQL.",
        show_default=False,
    ),
]
GatewayPortOption = Annotated[int, _port_option(config.ENV_GATEWAY_PORT, "the HTTP gateway")]
DashboardPortOption = Annotated[
    int, _port_option(config.ENV_DASHBOARD_PORT, "the web dashboard the supervisor serves")
]
ReadyTimeoutOption = Annotated[
    float,
    typer.Option(
        parser=parse_positive_seconds,
        metavar="SECONDS",
        help="Seconds each replica may take to become ready.",
    ),
]

RunDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="The run directory: where the supervisor keeps its state, logs and database. "
        f"Default: ${config.ENV_RUN_DIR}, else ./.asyncrpc.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print JSON for scripts; an error too, as {"error": ..., "exit_code": N}.',
    ),
]
ReadServerOption = Annotated[
    str | None,
    typer.Option(
        "--server-url",
        help="The server to read (http://... or postgresql://...). Default: the server of "
        f"the supervisor running in the run directory, else ${config.ENV_SERVER_URL}.",
        show_default=False,
    ),
]
NodeArgument = Annotated[
    str,
    typer.Argument(
        autocompletion=complete_nodes,
        help=f"A node: {NODE_NAMES}. `b` means every replica of b, `b.2` only replica 2.",
        show_default=False,
    ),
]
