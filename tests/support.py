"""Test-only helpers that neither benchmarks nor the harness need (shared ones live in harness/)."""

import sqlite3
from pathlib import Path


def write_older_server_database(path: Path) -> None:
    """A database as an older asyncrpc server left it: a log of requests, no format recorded."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, request BLOB);"
        'INSERT INTO log VALUES (1, 5, \'{"kind": "promise.create"}\');'
    )
    connection.close()
