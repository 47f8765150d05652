"""`asyncrpc invoke` (and its alias `call`): call a flow through the gateway, print its result.

The whole call is :func:`asyncrpc.ops.call.call_flow`, shared with the dashboard.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import (
    FLOW_NAMES,
    JsonOption,
    RunDirOption,
    completes,
    parse_positive_seconds,
)
from asyncrpc.cli.reporting import console, print_json, reported, run_dir_of
from asyncrpc.lesson import topology
from asyncrpc.runtime import config

if TYPE_CHECKING:
    from asyncrpc.ops.call import CallStart

_INVOKE_EXAMPLES = (
    "Examples: [bold]asyncrpc invoke await-chain[/bold] · "
    "[bold]asyncrpc invoke fan-out --json[/bold] · "
    "[bold]asyncrpc invoke await-chain --id await-chain-3f9a1c2e[/bold] (re-attach)"
)


@app.command("invoke", epilog=_INVOKE_EXAMPLES)
def invoke(
    flow: Annotated[
        str,
        typer.Argument(
            autocompletion=completes(*topology.FLOWS), help=f"The flow to call: {FLOW_NAMES}."
        ),
    ],
    invocation_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Invocation id. An id already used re-attaches to that invocation (its "
            "result, or waiting for it). Default: a fresh id, printed first.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            parser=parse_positive_seconds,
            metavar="SECONDS",
            help="Seconds to wait for the result before giving up.",
        ),
    ] = 60.0,
    start_timeout: Annotated[
        float,
        typer.Option(
            parser=parse_positive_seconds,
            metavar="SECONDS",
            envvar=config.ENV_START_TIMEOUT,
            help="Seconds to keep starting the invocation while the gateway says the server "
            "did not confirm it; past that: exit 3, NOT started.",
        ),
    ] = config.DEFAULT_START_TIMEOUT,
    as_json: JsonOption = False,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            help=f"Gateway to call. Default: ${config.ENV_GATEWAY_URL}, else the supervisor's.",
            show_default=False,
        ),
    ] = None,
    run_dir: RunDirOption = None,
) -> None:
    """Call a flow through the gateway; print its result and the time taken.

    await-chain and fan-out return their result to the caller; the detached
    chain returns at once, so its result is the value its last step (cog)
    stored, read from the server. A call survives a gateway restart. On
    timeout the invocation goes on: re-attach with --id. [bold]asyncrpc call[/bold]
    is the same command.

    Exit status: 0 the result is printed; 124 no result came within --timeout (the
    invocation goes on); 1 the call failed; 2 bad input (an unknown flow, a bad value);
    3 the invocation was NOT started (the server never confirmed creating it within
    --start-timeout): send the same --id again; 130 interrupted.
    """
    from rich.markup import escape

    from asyncrpc.ops.call import call_flow

    out = console()

    def announce(start: CallStart) -> None:
        if start.missing:
            console(stderr=True).print(
                f"note: {', '.join(start.missing)} not running here; the call waits until a "
                f"node serves each step (e.g. `asyncrpc start {start.missing[0]}`).",
                markup=False,
            )
        if not as_json:
            the_id = escape(start.invocation_id)
            again = f" (wait for it again with --id {the_id})" if start.fresh else ""
            out.print(f"calling {start.flow.name} as invocation [bold]{the_id}[/bold]{again}")

    with reported():
        result = call_flow(
            flow,
            invocation_id=invocation_id,
            timeout=timeout,
            gateway_url=gateway_url,
            env=os.environ,
            rundir=run_dir_of(run_dir),
            on_start=announce,
            start_timeout=start_timeout,
        )
    if as_json:
        print_json(result.to_json())
    else:
        value = escape(json.dumps(result.result))
        out.print(f"result: [bold]{value}[/bold] ({result.seconds:.2f}s)")


app.command(
    "call",
    help="Same as [bold]asyncrpc invoke[/bold]: call a flow through the gateway and print "
    "its result.",
    epilog=_INVOKE_EXAMPLES,
)(invoke)
