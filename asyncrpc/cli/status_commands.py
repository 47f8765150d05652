"""`asyncrpc status` (`ps`) and `asyncrpc ui`: what runs where, and the dashboard that shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import JsonOption, RunDirOption
from asyncrpc.cli.reporting import client_of, console, print_json, reported, run_dir_of
from asyncrpc.runtime.errors import CommandError, NothingRunning

# -- status / ps ----------------------------------------------------------------


def _status(as_json: bool, run_dir: Path | None) -> None:
    from asyncrpc.ops.health import probe

    with reported():
        try:
            client = client_of(run_dir)
            snapshot = client.status()
        except NothingRunning as nothing:
            if not as_json:
                raise
            # Nothing running is an answer, not a failure to answer: said in JSON, exit 1.
            where = str(run_dir_of(run_dir).path)
            print_json({"running": False, "run_dir": where, "message": str(nothing)})
            raise typer.Exit(nothing.exit_code) from None
    health = probe(snapshot.server_url, snapshot.gateway_url)
    if as_json:
        data = {"running": True, **snapshot.to_json(), "health": health.to_json()}
        data["dashboard"] = _dashboard_address(snapshot.dashboard_url, client.dashboard_token)
        print_json(data)
    else:
        from asyncrpc.terminal import status_table as view

        view.print_status(console(), snapshot, health)


@app.command()
def status(as_json: JsonOption = False, run_dir: RunDirOption = None) -> None:
    """Show what runs: node, group, replica, pid, state, uptime, restarts.

    A replica is starting, running, exited (it ended by itself), killed (by a
    signal) or stopped (by the supervisor). Also prints the server and gateway URLs, and whether
    each answers now: the gateway's /healthz says why it cannot reach the server (with --json:
    "health"). Exits 1 when nothing is running (with --json: `{"running": false, ...}`). With
    --json, "dashboard" is the address that signs a browser in.
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
    """Open the running supervisor's web dashboard in a browser, signed in (and print its URL).

    The URL signs a browser in once: its page trades the token after #token= for a
    session and drops it from the address. Keep it to yourself while the system runs.
    """
    import webbrowser

    with reported():
        client = client_of(run_dir)
        url = _dashboard_address(client.status().dashboard_url, client.dashboard_token)
        if url is None:
            raise CommandError(
                "this supervisor serves no dashboard (it was started with --no-dashboard). "
                "Stop it with `asyncrpc down` and start it again without that option."
            )
    console().print(f"dashboard: {url}", highlight=False)
    if no_open:
        return
    # The browser gets a file that leads on to the URL: a browser's command line is public.
    page = client.run_dir.write_sign_in_page(url) if client.dashboard_token else None
    if not webbrowser.open(page.as_uri() if page else url):
        console(stderr=True).print("no browser found here: open the URL above yourself.")


def _dashboard_address(url: str | None, secret: str | None) -> str | None:
    """The dashboard's sign-in address (its plain one from a supervisor without a secret)."""
    from asyncrpc.supervise.status import sign_in_url

    return sign_in_url(url, secret) if url and secret else url
