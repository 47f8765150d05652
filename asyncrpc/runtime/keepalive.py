"""How every connection to the server notices a dead link within seconds, not minutes.

A link that dies silently (a cable pulled, a firewall dropping packets, a host
gone) sends no reset: a connection waiting to read, or holding unacknowledged
data, waits for TCP's own retransmission timeout, about fifteen minutes on
Linux. Every connection this project opens to the server therefore carries
the same three settings:

- **keepalive probes** on an idle connection (a ``LISTEN`` connection, a
  pooled one, a poll stream) after :data:`KEEPALIVE_IDLE_S` seconds, every
  :data:`KEEPALIVE_INTERVAL_S`, giving up after :data:`KEEPALIVE_COUNT`
  unanswered probes;
- a **user timeout** (``TCP_USER_TIMEOUT``): data sent and not acknowledged
  for :data:`USER_TIMEOUT_S` seconds (a request on a dead link) breaks the
  connection;
- a **connect timeout** of :data:`CONNECT_TIMEOUT_S` seconds.

So a dead link is an error within :data:`NOTICE_WITHIN_S` seconds on any
connection, and the process logs it and reconnects. For Postgres these are
libpq's connection parameters (:func:`postgres_conninfo`); a value the URL
already gives wins. For HTTP they are socket options (:func:`keepalive_socket`).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

KEEPALIVE_IDLE_S = 2
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_COUNT = 2
USER_TIMEOUT_S = 6
CONNECT_TIMEOUT_S = 5
#: The longest a dead link goes unnoticed on a connection with these settings.
NOTICE_WITHIN_S = max(
    KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT, USER_TIMEOUT_S, CONNECT_TIMEOUT_S
)

#: libpq's names for the settings above (``tcp_user_timeout`` is in milliseconds).
POSTGRES_LIVENESS: Mapping[str, str] = {
    "keepalives": "1",
    "keepalives_idle": str(KEEPALIVE_IDLE_S),
    "keepalives_interval": str(KEEPALIVE_INTERVAL_S),
    "keepalives_count": str(KEEPALIVE_COUNT),
    "tcp_user_timeout": str(USER_TIMEOUT_S * 1000),
    "connect_timeout": str(CONNECT_TIMEOUT_S),
}


def postgres_conninfo(dsn: str) -> str:
    """``dsn`` with the liveness settings added, as a libpq connection string.

    Parameters the URL gives are kept as given: a user who asks for another
    ``connect_timeout`` gets it.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    given = conninfo_to_dict(dsn)
    return make_conninfo(
        dsn, **{key: value for key, value in POSTGRES_LIVENESS.items() if key not in given}
    )


def set_liveness(sock: socket.socket) -> None:
    """Turn on keepalive probes and the user timeout on a TCP socket (where the OS has them)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_S * 1000),
    )
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A socket for ``addr_info`` (family, type, proto, ...) with :func:`set_liveness` applied.

    The shape of aiohttp's ``socket_factory``.
    """
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=kind, proto=proto)
    if family in (socket.AF_INET, socket.AF_INET6):
        set_liveness(sock)
    return sock
