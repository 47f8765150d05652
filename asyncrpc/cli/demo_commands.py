"""`asyncrpc demo crash`: a narrated crash and recovery of one flow.

Thin: it checks the options (:mod:`asyncrpc.demo.scenario`), runs
:func:`asyncrpc.demo.crash.run_crash_demo` and turns the outcome into an exit
code: 0 when the flow recovered with the right result, 1 when it did not or
could not run, 2 for a wrong name or value, 130 after Ctrl-C (everything the
demo started is stopped in every case). With `--json` the narration goes to
stderr and the outcome, its timeline included, to stdout as one JSON object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import (
    GatewayPortOption,
    JsonOption,
    ReadyTimeoutOption,
    SchemaOption,
    ServerKindOption,
    ServerPortOption,
    ServerUrlOption,
    parse_positive_seconds,
    parse_seconds,
)
from asyncrpc.cli.reporting import fail, print_json
from asyncrpc.demo.scenario import default_killed_node
from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from asyncrpc.runtime.signals import sigterm_as_interrupt

demo_app = typer.Typer(
    name="demo",
    help="Scripted, narrated demos that show what Resonate does for a flow.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(demo_app)

_FLOWS = ", ".join(topology.flow_names())
_NODES = ", ".join(topology.PROCESS_NAMES)
_DEFAULT_NODES = ", ".join(f"{f.name}: {default_killed_node(f)}" for f in topology.FLOWS.values())


@demo_app.command(
    epilog="Examples: [bold]asyncrpc demo crash[/bold] · "
    "[bold]asyncrpc demo crash --flow fan-out[/bold] · "
    "[bold]asyncrpc demo crash --flow detached-chain --victim server[/bold] · "
    "[bold]asyncrpc demo crash --victim gateway --delay 8[/bold]",
)
def crash(
    flow: Annotated[str, typer.Option(help=f"The flow to crash: {_FLOWS}.")] = next(
        iter(topology.FLOWS)
    ),
    victim: Annotated[
        str | None,
        typer.Option(
            help=f"The node to kill: one of the flow's nodes, gateway or server ({_NODES}). "
            f"Default: the node whose step is running during the delay ({_DEFAULT_NODES}).",
            show_default=False,
        ),
    ] = None,
    delay: Annotated[
        float,
        typer.Option(
            parser=parse_seconds,
            metavar="SECONDS",
            help="Seconds the running step sleeps durably: the window for the crash, and "
            "how long the flow visibly waits.",
        ),
    ] = 5.0,
    ttl: Annotated[
        float | None,
        typer.Option(
            parser=parse_positive_seconds,
            metavar="SECONDS",
            help=f"Task lease of the worker nodes, seconds. Default: {config.DEFAULT_NODE_TTL:g}.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            parser=parse_positive_seconds,
            metavar="SECONDS",
            help="Seconds from the call's start for the flow to recover.",
        ),
    ] = 120.0,
    server_url: ServerUrlOption = None,
    server: ServerKindOption = "embedded",
    schema: SchemaOption = None,
    server_port: ServerPortOption = config.DEFAULT_SERVER_PORT,
    gateway_port: GatewayPortOption = config.DEFAULT_GATEWAY_PORT,
    ready_timeout: ReadyTimeoutOption = 30.0,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="The demo's run directory: where its supervisor keeps its state, logs and "
            "database. "
            f"Default: ${config.ENV_RUN_DIR}/demo, else ./.asyncrpc/demo.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Crash a node in the middle of a flow and watch the flow recover.

    Starts what the flow needs (like [bold]asyncrpc up FLOW --delay NODE=SECONDS[/bold]),
    calls it, kills the chosen node's replica with kill -9 while a step is
    running, shows the flow waiting, starts a replacement and shows the flow
    finishing with the same result, then prints a timeline. [bold]--victim server[/bold] kills the
    Resonate server and restarts it on its database; [bold]--victim postgres[/bold] does
    the same to a local Postgres with resonate.sql (as with --server postgres). Exit 0
    only if the flow recovered with the right result; everything started is stopped at the
    end.
    """
    from rich.console import Console

    from asyncrpc.demo.crash import DemoOptions, demo_run_dir, run_crash_demo
    from asyncrpc.demo.narrate import Narrator
    from asyncrpc.demo.scenario import choose
    from asyncrpc.runtime.errors import CommandError

    # Under --json the narration is for the person watching; stdout keeps the JSON.
    out = Console(stderr=as_json, highlight=False, soft_wrap=False)
    try:
        scenario = choose(flow, victim, delay)
        directory = (run_dir or demo_run_dir(os.environ)).resolve()
        options = DemoOptions(
            scenario=scenario,
            run_dir=directory,
            ttl=ttl,
            timeout=timeout,
            server_url=server_url,
            server=server,
            schema=schema,
            server_port=server_port,
            gateway_port=gateway_port,
            ready_timeout=ready_timeout,
        )
        narrator = Narrator(out, scenario)
        with sigterm_as_interrupt():
            outcome = run_crash_demo(options, os.environ, narrator)
    except CommandError as error:
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        fail("interrupted: stopped everything the demo had started.", 130)
    if as_json:
        print_json(
            {
                "flow": scenario.flow.name,
                "victim": scenario.killed_node,
                "invocation_id": outcome.invocation_id,
                "result": outcome.result,
                "expected": scenario.flow.expected_result,
                "recovered": outcome.recovered,
                "timeline": narrator.timeline_json(),
            }
        )
    if not outcome.recovered:
        raise typer.Exit(1)
