"""Fixtures of the end-to-end tests: real processes, each stopped when its test ends.

Every test under tests/e2e/ carries the ``e2e`` marker (tests/conftest.py adds it).

No module may leave a process running: each process started with an environment of
:func:`harness.isolation.isolated_env` carries this run's mark, and when a module's
tests and fixtures are done, any such process still running is killed and the module
fails (``nothing_left_running``).

A system on resonate-pg starts its `postgres` node on a copy of one data
directory prepared once per session (``postgres_data``): initdb and resonate.sql
are seconds each. tests/e2e/test_postgres.py and the `prepare` tests of
tests/e2e/test_postgres_upkeep.py prepare theirs from nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import leftovers
from harness.disk import MountUnavailable, tmpfs
from harness.isolation import isolated_env
from harness.postgres import prepared_data
from harness.processes import Processes, session
from tests.support.demo_run import DemoRun
from tests.support.launcher import Launcher

if TYPE_CHECKING:  # Playwright is imported by the modules that drive a browser only
    from playwright.sync_api import Browser

#: Seconds a process that is on its way out (a template after its supervisor) gets to end.
LEAVING_S = 10.0


@pytest.fixture(scope="module", autouse=True)
def nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module's last fixture: kill what it left running, and fail it for that."""
    yield
    left = leftovers.wait_gone(leftovers.running(), LEAVING_S)
    killed = leftovers.kill(left)
    if killed:
        pytest.fail(
            f"{request.module.__name__} left {len(killed)} process(es) running, "
            "now killed:\n  " + "\n  ".join(killed),
            pytrace=False,
        )


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start real processes; every one is stopped when the test ends, pass or fail."""
    with session(tmp_path / "logs", isolated_env(tmp_path / "run")) as processes:
        yield processes


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, for the module (its tests open pages of their own)."""
    from harness.browser import chromium

    with chromium() as it:
        yield it


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    """`asyncrpc demo crash` runs; the demo and every process it started are stopped at the end."""
    run = DemoRun(tmp_path)
    try:
        yield run
    finally:
        run.cleanup()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """`asyncrpc ...` as a user runs it; `down` and a kill of all it started at the end."""
    it = Launcher(tmp_path / "run", isolated_env(tmp_path / "run", COLUMNS="200"))
    try:
        yield it
    finally:
        it.cleanup()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB disk (a tmpfs mounted for the test, unmounted after, whatever happened).

    Mounting needs root; elsewhere the test is skipped, saying so. Ask for it before
    ``procs``, so that every process is stopped before the disk goes.
    """
    try:
        with tmpfs(tmp_path / "small-disk", "2m") as disk:
            yield disk
    except MountUnavailable as why:
        pytest.skip(f"a full disk is a tmpfs mounted for the test: {why}")


@pytest.fixture(scope="session")
def postgres_data(resonate_sql: Path) -> Iterator[Path]:
    """A stopped data directory the `postgres` node prepared (resonate.sql, the step), to copy.

    ``harness.postgres.copy_data(postgres_data, RUN_DIR / "postgres")`` before
    `asyncrpc up --server postgres` (or ``--data`` of `asyncrpc postgres`).
    """
    with prepared_data(resonate_sql) as pgdata:
        yield pgdata
