"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Processes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start real processes; every one is stopped when the test ends, pass or fail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESONATE_", "ASYNCRPC_"))}
    env["ASYNCRPC_RUN_DIR"] = str(tmp_path / "run")
    env["PYTHONUNBUFFERED"] = "1"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    processes = Processes(log_dir=log_dir, base_env=env)
    try:
        yield processes
    finally:
        processes.stop_all()
