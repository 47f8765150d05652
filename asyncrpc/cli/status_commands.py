"""`asyncrpc status` (`ps`) and `asyncrpc ui`: what runs where, and the dashboard that shows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import JsonOption, RunDirOption
from asyncrpc.cli.reporting import client_of, console, reported
from asyncrpc.runtime.errors import LauncherError

# -- status / ps ----------------------------------------------------------------


def _status(as_json: bool, run_dir: Path | None) -> None:
    from asyncrpc.ops.health import probe

    with reported():
        snapshot = client_of(run_dir).status()
    health = probe(snapshot.server_url, snapshot.gateway_url)
    if as_json:
        print(json.dumps({**snapshot.to_json(), "health": health.to_json()}, indent=1))
    else:
        from asyncrpc.terminal import status_table as view

        view.print_status(console(), snapshot, health)


@app.command()
def status(as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Show what runs: node, group, replica, pid, state, uptime, restarts.

    A replica is starting, running, exited (it ended by itself), killed (by a
    signal) or stopped (by the supervisor). Also prints the server and gateway URLs, and whether
    each answers now: the gateway's /healthz says why it cannot reach the server (with --json:
    "health"). Exits 1 when nothing is running.
    """
    _status(as_json, run_dir)


@app.command("ps")
def ps(as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Same as [bold]asyncrpc status[/bold]."""
    _status(as_json, run_dir)


# -- ui -------------------------------------------------------------------------


@app.command()
def ui(
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Only print the dashboard's URL.")
    ] = False,
    run_dir: RunDirOption = None,
) -> None:
    """Open the running supervisor's web dashboard in a browser (and print its URL)."""
    import webbrowser

    with reported():
        url = client_of(run_dir).status().dashboard_url
        if url is None:
            raise LauncherError(
                "this supervisor serves no dashboard (it was started with --no-dashboard). "
                "Stop it with `asyncrpc down` and start it again without that option."
            )
    console().print(f"dashboard: {url}", highlight=False)
    if not no_open and not webbrowser.open(url):
        console(stderr=True).print("no browser found here: open the URL above yourself.")
