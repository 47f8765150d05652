"""Whether the system's server and gateway answer now, for `asyncrpc status`.

The supervisor knows which processes run; whether they *work* is another
question. The gateway answers it best: its ``/healthz`` is 503 with the
reason while it cannot reach the Resonate server (the database, on
resonate-pg). The server is asked directly too: an HTTP server's
``/healthz``; for a Postgres URL, whether its port accepts a connection (a
full login would need the database driver, which `status` does not load).
Each probe gives up after :data:`PROBE_TIMEOUT` seconds, so `status` stays quick.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from asyncrpc.runtime import config, local_http

#: Seconds one probe may take.
PROBE_TIMEOUT = 2.0
POSTGRES_PORT = 5432


@dataclass(frozen=True)
class Reach:
    """One probe: did it answer as it should, and what it said (or why not)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class SystemHealth:
    """The server's and the gateway's probes (None: no gateway to ask)."""

    server: Reach
    gateway: Reach | None

    def to_json(self) -> dict[str, Any]:
        return {
            "server": asdict(self.server),
            "gateway": None if self.gateway is None else asdict(self.gateway),
        }


def gateway_health(url: str, timeout: float = PROBE_TIMEOUT) -> Reach:
    """The gateway's ``/healthz``: healthy, or its 503's reason, or no answer."""
    try:
        answer = local_http.request(f"{url.rstrip('/')}/healthz", timeout=timeout)
    except local_http.Unreachable as error:
        return Reach(False, f"no answer ({error})")
    if answer.status == 200:
        return Reach(True, "healthy: it reaches the server")
    try:
        body = answer.json()
    except ValueError:
        body = None
    reason = body.get("error") if isinstance(body, dict) else None
    return Reach(False, f"{answer.status}: {reason or answer.text.strip()[:200]}")


def server_reach(url: str, timeout: float = PROBE_TIMEOUT) -> Reach:
    """Whether the server answers: HTTP ``/healthz``, or a Postgres port that accepts."""
    if config.is_postgres_url(url):
        address = urlsplit(url)
        host, port = address.hostname or "localhost", address.port or POSTGRES_PORT
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as error:
            return Reach(False, f"unreachable: {error}")
        return Reach(True, "accepts connections")
    try:
        local_http.request(f"{url.rstrip('/')}/healthz", timeout=timeout)
    except local_http.Unreachable as error:
        return Reach(False, f"unreachable: {error}")
    return Reach(True, "answers")


def probe(server_url: str, gateway_url: str | None) -> SystemHealth:
    """Both probes."""
    return SystemHealth(
        server_reach(server_url),
        None if gateway_url is None else gateway_health(gateway_url),
    )
