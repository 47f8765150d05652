"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.demo_run import DemoRun
from tests.support import Processes, isolated_env


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start real processes; every one is stopped when the test ends, pass or fail."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    processes = Processes(log_dir=log_dir, base_env=isolated_env(tmp_path / "run"))
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    """`asyncrpc demo crash` runs; the demo and every process it started are stopped at the end."""
    run = DemoRun(tmp_path)
    try:
        yield run
    finally:
        run.cleanup()
