"""A database running resonate.sql for the whole conformance suite.

It comes from the session's one Postgres (``resonate_cluster``, tests/conftest.py);
each scenario starts from empty tables instead
(:class:`~tests.conformance.peers.ReferencePeer` truncates them). Without
``ASYNCRPC_RESONATE_SQL`` the suite skips, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.postgres import ResonateCluster


@pytest.fixture(scope="session")
def reference_dsn(resonate_cluster: ResonateCluster) -> str:
    return resonate_cluster.database("conformance")


@pytest.fixture(scope="session")
def reference_connection(reference_dsn: str) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(reference_dsn, autocommit=True) as conn:
        yield conn
