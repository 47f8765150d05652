"""uvloop where it installs, asyncio's own loop everywhere else."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

from asyncrpc.runtime import event_loop

uvloop = pytest.importorskip("uvloop")


def missing(name: str) -> ModuleType:
    raise ModuleNotFoundError(f"No module named {name!r}")


def test_uvloop_runs_where_it_is_installed() -> None:
    assert event_loop.choose_runner() is uvloop.run


def test_asyncio_runs_where_uvloop_is_missing() -> None:
    assert event_loop.choose_runner(missing) is asyncio.run


def test_run_returns_the_coroutines_result() -> None:
    async def loop_name() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(loop_name()).startswith("uvloop")
