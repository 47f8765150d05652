"""`asyncrpc server`: run the embedded Resonate server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from asyncrpc.cli.application import app
from asyncrpc.cli.options import parse_port
from asyncrpc.postgres.tuning import Retention
from asyncrpc.runtime import config


@app.command()
def server(
    host: Annotated[
        str, typer.Option(help="Address to bind. Keep 127.0.0.1 unless you mean it.")
    ] = (config.DEFAULT_HOST),
    port: Annotated[
        int,
        typer.Option(
            parser=parse_port,
            metavar="PORT",
            envvar=config.ENV_SERVER_PORT,
            help="Port to listen on.",
        ),
    ] = (config.DEFAULT_SERVER_PORT),
    db: Annotated[
        str | None,
        typer.Option(
            help="SQLite file for durable state, or :memory:. Default: RUN_DIR/server.db."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=config.ENV_TOKEN,
            help="Require 'Authorization: Bearer TOKEN' on requests and poll streams. Prefer "
            f"${config.ENV_TOKEN}: any local user can read a command line (ps).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    retain: Annotated[
        str,
        typer.Option(
            help="Forget settled invocations this long after they settle: 30m, 12h, 7d, "
            "or 'forever'."
        ),
    ] = "7d",
) -> None:
    """Run a Resonate server (HTTP + SSE protocol, durable on SQLite).

    Any resonate-sdk worker can use it: point RESONATE_URL at it. Killing it
    loses nothing that was acknowledged; restart it on the same --db and every
    flow in flight continues.
    """
    from asyncrpc.runtime.serving import PortInUse
    from asyncrpc.server.main import default_db_path, serve
    from asyncrpc.server.retention import RetentionError, parse_retain
    from asyncrpc.server.store import StoreError

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("use debug, info, warning or error", param_hint="--log-level")
    try:
        retain_ms = parse_retain(retain)
    except RetentionError as exc:
        raise typer.BadParameter(str(exc), param_hint="--retain") from None
    database = db or default_db_path(config.run_dir(os.environ))
    try:
        code = serve(host, port, database, token or None, log_level, retain_ms)
    except (PortInUse, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if code:
        raise typer.Exit(code)


postgres_app = typer.Typer(
    name="postgres",
    invoke_without_command=True,
    rich_markup_mode="rich",
)
app.add_typer(postgres_app)

RETAIN_HELP = (
    "Delete settled invocations this long after they settle: 30m, 12h, 7d, or 'forever'. "
    "Kept in the database. Default: what the database has (7d when first prepared)."
)


def retention_option(value: str | None) -> Retention | None:
    """``--retain`` as the database keeps it; None when not given (keep the database's)."""
    from asyncrpc.server.retention import RetentionError, parse_retain

    if value is None:
        return None
    try:
        return Retention(parse_retain(value))
    except RetentionError as exc:
        raise typer.BadParameter(str(exc), param_hint="--retain") from None


@postgres_app.callback()
def postgres(
    ctx: typer.Context,
    data: Annotated[
        str | None,
        typer.Option(help="Postgres data directory. Default: RUN_DIR/postgres."),
    ] = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen",
            "--host",
            metavar="ADDR",
            help="Address to listen on (repeat for more; '*' for all). Default: 127.0.0.1, "
            "which only this machine reaches.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int, typer.Option(parser=parse_port, metavar="PORT", help="Port to listen on.")
    ] = 5432,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="CIDR",
            help="Let clients from this network log in with a password (scram-sha-256), "
            "e.g. 10.0.0.0/24; repeat for more. Loopback is trusted; nothing else is.",
            show_default=False,
        ),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            metavar="NAME=VARIABLE",
            help="Create (or update) login role NAME, a member of resonate_worker, with the "
            "password held in the environment variable VARIABLE (never the password itself: "
            "any local user can read a command line); repeat for more.",
            show_default=False,
        ),
    ] = None,
    reader: Annotated[
        list[str] | None,
        typer.Option(
            "--reader",
            metavar="NAME",
            help="Let role NAME read the call graph (SELECT on resonate.promises): the "
            "gateway's role, and whoever runs `asyncrpc tree`; repeat for more.",
            show_default=False,
        ),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(help="resonate.sql to apply on first start. Default: $ASYNCRPC_RESONATE_SQL."),
    ] = None,
    retain: Annotated[str | None, typer.Option(help=RETAIN_HELP, show_default=False)] = None,
) -> None:
    """Run a local Postgres 18 with Resonate's schema: the server as a database (resonate-pg).

    The data directory is initialised, resonate.sql applied with
    asyncrpc.process_timeouts() (which lets every member of resonate_worker
    fire timers) and asyncrpc's step run (the timer scan on its index,
    retention), as far as not done before; the access options are applied on
    every start; then this process becomes Postgres itself. Nodes on this
    machine reach it at postgresql://postgres@127.0.0.1:PORT/postgres; nodes on
    others as a --role over an --allow'ed network (docs/deploy.md).
    [bold]asyncrpc postgres prepare --url URL[/bold] prepares a database
    someone else runs.
    """
    if ctx.invoked_subcommand is not None:
        return
    from asyncrpc.postgres import local
    from asyncrpc.postgres.access import AccessError, parse_access
    from asyncrpc.postgres.schema import SchemaUnavailable, resonate_sql_path
    from asyncrpc.postgres.tuning import PrepareError

    retention = retention_option(retain)
    pgdata = (Path(data) if data else local.default_data_dir(config.run_dir(os.environ))).resolve()
    try:
        access = parse_access(
            listen=listen or (),
            allow=allow or (),
            roles=role or (),
            readers=reader or (),
            env=os.environ,
        )
        local.prepare(pgdata, lambda: resonate_sql_path(os.environ, schema), retention, access)
    except (SchemaUnavailable, AccessError, PrepareError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1 if isinstance(exc, PrepareError) else 2) from None
    local.exec_postgres(pgdata, access.listen_addresses, port)


@postgres_app.command()
def prepare(
    url: Annotated[
        str,
        typer.Option(
            envvar=config.ENV_SERVER_URL,
            help="The database: postgresql://USER@HOST:PORT/DB (else $RESONATE_URL). The role "
            "must own resonate's functions (the role that applied resonate.sql).",
            show_default=False,
        ),
    ],
    schema: Annotated[
        str | None,
        typer.Option(
            help="resonate.sql, applied only if the database has no resonate schema yet. "
            "Default: $ASYNCRPC_RESONATE_SQL."
        ),
    ] = None,
    retain: Annotated[str | None, typer.Option(help=RETAIN_HELP, show_default=False)] = None,
) -> None:
    """Prepare a Postgres someone else runs: resonate.sql if missing, the timer wrapper, the step.

    The timer wrapper, asyncrpc.process_timeouts(), lets every member of
    resonate_worker fire timers; the step (docs/deploy.md, "Preparing a
    database") makes the timer scan use its index and keeps the retention in
    the database. Safe to run again.
    """
    from asyncrpc.postgres.schema import SchemaUnavailable, resonate_sql_path
    from asyncrpc.postgres.tuning import PrepareError, prepare_database

    if not config.is_postgres_url(url):
        raise typer.BadParameter(
            f"{config.redacted(url)!r} is not a Postgres URL; give postgresql://USER@HOST:PORT/DB",
            param_hint="--url",
        )
    retention = retention_option(retain)

    def schema_file() -> Path:
        return resonate_sql_path(os.environ, schema)

    try:
        report = prepare_database(url, schema_file, retention)
    except (PrepareError, SchemaUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, SchemaUnavailable) else 1) from None
    for line in report.lines():
        typer.echo(line)
