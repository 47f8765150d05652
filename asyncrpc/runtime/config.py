"""Defaults and environment variables shared by every process.

Each function takes the environment as a mapping so callers (and tests) pass
their own instead of patching ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SERVER_PORT = 8001
DEFAULT_GATEWAY_PORT = 5000
DEFAULT_DASHBOARD_PORT = 5050
DEFAULT_SERVER_URL = f"http://{DEFAULT_HOST}:{DEFAULT_SERVER_PORT}"
#: Seconds a node's task lease lasts when nothing says otherwise. Short, so a
#: killed worker's step is handed to a replacement within seconds in a demo.
DEFAULT_NODE_TTL = 5.0

ENV_SERVER_URL = "RESONATE_URL"
ENV_TOKEN = "RESONATE_TOKEN"
ENV_RUN_DIR = "ASYNCRPC_RUN_DIR"
ENV_DELAY = "ASYNCRPC_DELAY"
ENV_TTL = "ASYNCRPC_TTL"
ENV_NODE_ID = "ASYNCRPC_NODE_ID"
ENV_GATEWAY_URL = "ASYNCRPC_GATEWAY_URL"
ENV_SERVER_PORT = "ASYNCRPC_SERVER_PORT"
ENV_GATEWAY_PORT = "ASYNCRPC_GATEWAY_PORT"
#: "0" makes the launcher spawn every replica instead of forking it from its template.
ENV_TEMPLATE = "ASYNCRPC_TEMPLATE"
ENV_DASHBOARD_PORT = "ASYNCRPC_DASHBOARD_PORT"
#: Seconds a start keeps sending its create while the server does not answer (gateway, invoke).
ENV_START_TIMEOUT = "ASYNCRPC_START_TIMEOUT"
#: The default of both: long enough for a server (or Postgres) to restart.
DEFAULT_START_TIMEOUT = 30.0
#: The file descriptor of the run directory's lock, handed by `up --detach` to its supervisor.
ENV_RUN_LOCK_FD = "ASYNCRPC_RUN_LOCK_FD"

#: URL schemes that name a Postgres database with resonate.sql applied (resonate-pg):
#: every process then talks to the database itself, and no HTTP server runs.
POSTGRES_SCHEMES = ("postgresql", "postgres")

#: The line a node prints once it is connected; the launcher waits for it.
READY_MARKER = "asyncrpc: ready"


def server_url(env: Mapping[str, str], override: str | None = None) -> str:
    """The Resonate server URL: explicit value, then RESONATE_URL, then the default."""
    return (override or env.get(ENV_SERVER_URL) or DEFAULT_SERVER_URL).rstrip("/")


def run_dir(env: Mapping[str, str]) -> Path:
    """The run directory: where logs, the database and the supervisor's state live."""
    configured = env.get(ENV_RUN_DIR)
    return Path(configured) if configured else Path.cwd() / ".asyncrpc"


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a resonate-pg database rather than an HTTP server."""
    return urlsplit(url).scheme in POSTGRES_SCHEMES


def redacted(url: str) -> str:
    """``url`` without its password, for logs and tables."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
