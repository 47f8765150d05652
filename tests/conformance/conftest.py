"""One throwaway Postgres running resonate.sql for the whole conformance suite.

The server starts once per session (a few seconds); each scenario starts from
empty tables instead (:class:`~tests.conformance.peers.ReferencePeer`
truncates them). Without ``ASYNCRPC_RESONATE_SQL`` the suite skips, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.postgres import PostgresUnavailable, resonate_postgres, resonate_sql_path


@pytest.fixture(scope="session")
def reference_dsn() -> Iterator[str]:
    try:
        schema = resonate_sql_path()
    except PostgresUnavailable as exc:
        pytest.skip(f"conformance suite needs resonate.sql: {exc}")
    with resonate_postgres(schema) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def reference_connection(reference_dsn: str) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(reference_dsn, autocommit=True) as conn:
        yield conn
