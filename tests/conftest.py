"""The ``e2e`` marker, and fixtures that unit and end-to-end tests share.

A test is end-to-end when it starts real processes: every test under tests/e2e/,
and the conformance tests, which start Postgres (the ``resonate_cluster`` fixture).
``uv run pytest -m "not e2e"`` runs the rest, in this process only
(tests/unit/conftest.py fails a unit test that starts one).

Postgres starts once per session (``resonate_cluster``); each module that needs
resonate.sql takes a fresh database of its own from it.
"""

from __future__ import annotations

import http.server
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncrpc.supervise.pids import ProcessRef
from harness.postgres import (
    PostgresUnavailable,
    ResonateCluster,
    resonate_sql_path,
)
from harness.postgres import (
    resonate_cluster as start_cluster,
)
from tests.support import proc_reads

E2E = Path(__file__).parent / "e2e"
#: A fixture that starts a process: a test that uses it is end-to-end wherever it lives.
STARTS_POSTGRES = "resonate_cluster"


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(E2E) or STARTS_POSTGRES in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


class Refuses(http.server.BaseHTTPRequestHandler):
    """Whatever holds the port now: it answers every request 401, as to a stranger's token."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[str]:
    """The URL of a server in this process that refuses every request (401)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_proc() -> Iterator[None]:
    """Fail the test if asyncrpc's own code opens a /proc path (macOS has none)."""
    with proc_reads.none_by_asyncrpc():
        yield


@pytest.fixture
def reaper() -> Iterator[list[ProcessRef]]:
    """Processes a test saw; any still alive at the end is killed (only if still the same)."""
    refs: list[ProcessRef] = []
    yield refs
    for ref in refs:
        ref.signal(signal.SIGKILL)


@pytest.fixture(scope="session")
def resonate_sql() -> Path:
    """resonate.sql (``ASYNCRPC_RESONATE_SQL``); the tests that need it skip without it."""
    try:
        return resonate_sql_path()
    except PostgresUnavailable as exc:
        pytest.skip(f"needs resonate.sql: {exc}")


@pytest.fixture(scope="session")
def resonate_cluster(resonate_sql: Path) -> Iterator[ResonateCluster]:
    """One throwaway Postgres for the session; ``.database(purpose)`` is a fresh resonate.sql."""
    with start_cluster(resonate_sql) as cluster:
        yield cluster
