"""Harness names the tests import from here (they live in :mod:`harness`), and test helpers."""

import sqlite3
from pathlib import Path

from harness.isolation import free_port, isolated_env
from harness.processes import ASYNCRPC, Process, Processes
from harness.waiting import http_ok, wait_until

__all__ = [
    "ASYNCRPC",
    "Process",
    "Processes",
    "free_port",
    "http_ok",
    "isolated_env",
    "wait_until",
]


def write_older_server_database(path: Path) -> None:
    """A database as an older asyncrpc server left it: a log of requests, no format recorded."""
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, request BLOB);"
        'INSERT INTO log VALUES (1, 5, \'{"kind": "promise.create"}\');'
    )
    connection.close()
