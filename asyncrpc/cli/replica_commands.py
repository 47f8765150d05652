"""`asyncrpc kill`, `start` and `restart`: one node's replicas, while the rest keeps running."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import JsonOption, NodeArgument, RunDirOption, parse_seconds
from asyncrpc.cli.reporting import client_of, console, print_json, reported
from asyncrpc.supervise.targets import parse_node_selector


class SignalName(StrEnum):
    KILL = "KILL"
    TERM = "TERM"


@app.command()
def kill(
    node: NodeArgument,
    signal_name: Annotated[
        SignalName,
        typer.Option(
            "--signal",
            "-s",
            case_sensitive=False,
            help="KILL simulates a crash (no clean-up); TERM asks for a clean stop.",
        ),
    ] = SignalName.KILL,
    as_json: JsonOption = False,
    run_dir: RunDirOption = None,
) -> None:
    """Signal each replica of a node (SIGKILL by default: a crash); wait until it is gone.

    The server and the gateway are nodes too. Only a process the supervisor
    started and that is still that same process is signalled (a recycled pid
    is never touched). Bring a replacement up with [bold]asyncrpc start NODE[/bold];
    with [bold]up --respawn[/bold] that happens by itself.
    """
    with reported():
        selector = parse_node_selector(node)
        killed = client_of(run_dir).kill(str(selector), signal_name.value)
    if as_json:
        print_json({"signal": signal_name.value, "killed": killed})
        return
    print(f"Sent SIG{signal_name.value} to {', '.join(killed)}; it is gone.")


@app.command()
def start(
    node: NodeArgument,
    delay: Annotated[
        float | None,
        typer.Option(
            parser=parse_seconds,
            metavar="SECONDS",
            help="Crash-demo delay (seconds) for the started node; default: as before.",
            show_default=False,
        ),
    ] = None,
    add: Annotated[
        bool, typer.Option("--add", help="Start one more replica of a worker node.")
    ] = False,
    as_json: JsonOption = False,
    run_dir: RunDirOption = None,
) -> None:
    """Start a node's replicas (a replacement after a crash); the rest keeps running.

    `b` starts every replica of b that is not running (or b.1 if b was never
    started); `b.3` starts that replica; `--add` adds one more replica.
    `server` restarts the embedded server on its database. A replica that
    exits at start is reported with its last log lines.
    """
    with reported():
        selector = parse_node_selector(node)
        result = client_of(run_dir).start(str(selector), delay, add)
    if as_json:
        print_json(result.to_json())
        return
    out = console()
    for name in result.started:
        out.print(f"Started {name} (pid {result.pids.get(name)}); it is ready.")
    for name in result.already_running:
        out.print(
            f"{name} is already running (pid {result.pids.get(name)}); "
            f"`asyncrpc restart {name}` replaces it, `asyncrpc start {selector.node} --add` "
            "adds a replica."
        )


@app.command()
def restart(node: NodeArgument, as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Stop a node's replicas cleanly (SIGTERM) and start replacements.

    `b` restarts every replica of b, `b.2` one. The rest keeps running.
    """
    with reported():
        selector = parse_node_selector(node)
        restarted = client_of(run_dir).restart(str(selector))
    if as_json:
        print_json({"restarted": restarted})
        return
    console().print(f"Restarted {', '.join(restarted)}; ready.")
