"""`asyncrpc promises search` and `promises get`: the durable promises the server holds.

Thin: :mod:`asyncrpc.ops.promises` chooses the server and reads it (the embedded
server or resonate-pg alike), :mod:`asyncrpc.terminal.promise_views` draws the answer.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import JsonOption, ReadServerOption, RunDirOption, number_option
from asyncrpc.cli.reporting import console, print_json, reported, run_dir_of
from asyncrpc.readers.promises import DEFAULT_LIMIT, StateFilter
from asyncrpc.runtime.numbers import WholeNumber

#: The most promises one search shows.
MAX_LIMIT = 100_000

promises_app = typer.Typer(
    name="promises",
    help="The durable promises the server holds: search them by id, read one.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(promises_app)

_STATES = ", ".join(option.value for option in StateFilter)


@promises_app.command(
    epilog="Examples: [bold]asyncrpc promises search 'await-chain-*'[/bold] · "
    "[bold]asyncrpc promises search '*' --state pending[/bold] · "
    "[bold]asyncrpc promises search 'order-42*' --json[/bold]",
)
def search(
    pattern: Annotated[
        str,
        typer.Argument(
            metavar="PATTERN",
            help="Promise ids to find, * matching any characters (quote it from the shell): "
            "`await-chain-*`, `order-42:*`, `*`. Without * it names one id.",
        ),
    ] = "*",
    state: Annotated[
        StateFilter | None,
        typer.Option(
            case_sensitive=False,
            help=f"Only promises in this state: {_STATES} (rejected includes timed out and "
            "canceled).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            parser=number_option(WholeNumber(1, MAX_LIMIT)),
            metavar="N",
            help="Show the newest N.",
        ),
    ] = DEFAULT_LIMIT,
    as_json: JsonOption = False,
    server_url: ReadServerOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """List the promises whose ids match PATTERN, newest first.

    The table shows each one's id, function, state, and when it was created and
    settled. Every step of an invocation is a promise (its id starts with the invocation's),
    so `asyncrpc promises search 'order-42*'` lists one invocation's steps; then
    [bold]asyncrpc promises get ID[/bold] shows one, and [bold]asyncrpc tree ID[/bold] the graph.
    """
    from asyncrpc.ops import promises
    from asyncrpc.readers.promises import PromiseQuery

    with reported():
        server = promises.server_to_read(server_url, run_dir_of(run_dir), os.environ)
        page = promises.search(server, PromiseQuery(pattern, state, limit))
    if as_json:
        print_json(
            {
                "pattern": pattern,
                "state": str(state) if state else None,
                "matched": page.matched,
                "promises": [record.to_json() for record in page.promises],
            }
        )
        return
    from asyncrpc.terminal import promise_views as view

    out = console()
    if page.promises:
        out.print(view.promises_table(page))
    out.print(view.page_summary(page, pattern), markup=False)


@promises_app.command(
    epilog="Examples: [bold]asyncrpc promises get await-chain[/bold] · "
    "[bold]asyncrpc promises get order-42 --json[/bold]",
)
def get(
    promise_id: Annotated[str, typer.Argument(metavar="ID", help="The promise's id.")],
    as_json: JsonOption = False,
    server_url: ReadServerOption = None,
    run_dir: RunDirOption = None,
) -> None:
    """Show one promise: function, group, state, param, value, times.

    Its function, group and target, state, param and value (decoded; an error with its
    message), tags, timeout, and when it was created and settled. Exit 1 when there is none.
    """
    from asyncrpc.ops import promises

    with reported():
        server = promises.server_to_read(server_url, run_dir_of(run_dir), os.environ)
        record = promises.get(server, promise_id)
    if as_json:
        print_json(record.to_json())
        return
    from asyncrpc.terminal import promise_views as view

    console().print(view.promise_detail(record))
