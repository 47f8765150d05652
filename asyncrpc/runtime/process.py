"""What every long-running asyncrpc process (worker node, gateway) does the same way.

Validating its settings (a :class:`~asyncrpc.runtime.errors.SettingsError` says
what was wrong and what is valid; :mod:`asyncrpc.runtime.numbers` reads the
numbers), printing the one ready line the launcher waits for, logging to
stdout, and stopping cleanly on SIGTERM or SIGINT
(:func:`asyncrpc.runtime.signals.stop_event`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable

from asyncrpc.runtime import config, log_lines, signals
from asyncrpc.runtime.errors import SettingsError


def default_node_id(name: str, random_hex: Callable[[int], str] = secrets.token_hex) -> str:
    """``NAME-<4 hex>``: unique enough to tell replicas apart in logs."""
    return f"{name}-{random_hex(2)}"


def check_node_id(node_id: str) -> str:
    """A unique id must be usable in the poll URL path: no '/', no spaces, not empty."""
    if not node_id or any(ch in node_id for ch in "/?#% \t\n:") or len(node_id) > 128:
        raise SettingsError(
            f"node id {node_id!r} is not valid: use 1-128 characters without "
            "'/', '?', '#', '%', ':' or spaces (e.g. b-1)"
        )
    return node_id


def check_server_url(url: str) -> str:
    """An http(s) URL with a host (http://127.0.0.1:8001), or a postgresql:// DSN (resonate-pg).

    A Postgres DSN may name its host in the query (``?host=/run/dir``, a Unix socket).
    """
    scheme, _, rest = url.partition("://")
    if scheme in config.POSTGRES_SCHEMES and rest:
        return url
    if scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise SettingsError(
            f"server URL {config.redacted(url)!r} is not valid: expected http://HOST:PORT "
            f"(e.g. {config.DEFAULT_SERVER_URL}) or postgresql://USER@HOST:PORT/DATABASE "
            "(a Postgres with resonate.sql applied)"
        )
    return url


def ready_line(name: str, group: str, node_id: str, server_url: str, **extra: object) -> str:
    """The one line a process prints when it can receive work."""
    server = config.redacted(server_url)
    fields = {"node": name, "group": group, "id": node_id, "server": server, **extra}
    return " ".join([config.READY_MARKER, *(f"{key}={value}" for key, value in fields.items())])


def announce(line: str) -> None:
    print(line, flush=True)


def configure_logging() -> None:
    """Our lines at INFO, the SDK's only when something is wrong; all on stdout."""
    log_lines.configure(logging.INFO, sys.stdout, "%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S")
    logging.getLogger("resonate").setLevel(logging.WARNING)


async def until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGTERM and SIGINT set ``stop`` for a clean exit."""
    with signals.stop_event() as stop:
        await main(stop)
