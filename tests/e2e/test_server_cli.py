"""`asyncrpc server` refuses bad options with a message and exit code 2, not a traceback."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from pathlib import Path

from harness.isolation import free_port
from harness.processes import ASYNCRPC
from tests.support.server import write_older_server_database


def run_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ASYNCRPC, "server", *args], capture_output=True, text=True, timeout=30)


def test_a_directory_as_database_is_refused(tmp_path: Path) -> None:
    result = run_server("--db", str(tmp_path), "--port", str(free_port()))
    assert result.returncode == 2
    assert "--db takes the path of a SQLite file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_file_that_is_not_a_database_is_refused_and_kept(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("not a database, and not to be overwritten\n" * 20)
    result = run_server("--db", str(precious), "--port", str(free_port()))
    assert result.returncode == 2
    assert "is not a database" in result.stderr
    assert precious.read_text().startswith("not a database")


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_server("--db", ":memory:", "--port", str(port))
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_bad_log_level_is_refused() -> None:
    result = run_server("--log-level", "loud", "--db", ":memory:")
    assert result.returncode == 2
    assert "debug, info, warning or error" in result.stderr


def test_a_bad_retention_is_refused() -> None:
    result = run_server("--db", ":memory:", "--retain", "soon")
    assert result.returncode == 2 and "--retain" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_of_an_older_server_is_refused_and_kept(tmp_path: Path) -> None:
    old = tmp_path / "server.db"
    write_older_server_database(old)
    result = run_server("--db", str(old), "--port", str(free_port()))
    assert result.returncode == 2
    assert "format 1" in result.stderr and "reads format 4" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert sqlite3.connect(old).execute("SELECT COUNT(*) FROM log").fetchone() == (1,)
