"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.isolation import isolated_env
from harness.processes import Processes, session
from tests.demo_run import DemoRun


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start real processes; every one is stopped when the test ends, pass or fail."""
    with session(tmp_path / "logs", isolated_env(tmp_path / "run")) as processes:
        yield processes


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    """`asyncrpc demo crash` runs; the demo and every process it started are stopped at the end."""
    run = DemoRun(tmp_path)
    try:
        yield run
    finally:
        run.cleanup()
