"""The fork template is used only where forking is safe: Linux, unless it is turned off.

tests/e2e/test_launcher_template.py forks replicas from it.
"""

from __future__ import annotations

from asyncrpc.runtime import config
from asyncrpc.supervise.template_client import template_enabled
from tests.support.loop_turns import loop_turns


def test_template_is_used_only_where_fork_is_safe() -> None:
    assert template_enabled({}, platform="linux")
    assert not template_enabled({config.ENV_TEMPLATE: "0"}, platform="linux")
    assert not template_enabled({}, platform="darwin")
    assert not template_enabled({}, platform="win32")


def test_the_detached_supervisor_goes_on_while_the_dashboard_loads() -> None:
    """Its event loop runs (sends requests, notices readiness) while the module loads."""
    import asyncio
    import time
    import types

    from asyncrpc.entrypoints import detached_supervisor

    ticks: list[float] = []
    opened = object()

    async def open_dashboard(*args: object) -> object:
        return opened

    def load(name: str) -> types.ModuleType:
        assert name == detached_supervisor.DASHBOARD_MODULE
        time.sleep(0.3)  # as a slow import would
        module = types.ModuleType(name)
        module.open_dashboard = open_dashboard  # type: ignore[attr-defined]
        return module

    async def scenario() -> object:
        async with loop_turns() as turns:
            opened_here = await detached_supervisor._open_dashboard(
                None,  # type: ignore[arg-type]
                {},
                1,
                "secret",
                load=load,
            )
        ticks.extend(turns)
        return opened_here

    assert asyncio.run(scenario()) is opened
    assert len(ticks) >= 10, f"the loop ran {len(ticks)} times during a 0.3 s load"


def test_up_forks_its_template_only_with_no_thread_and_no_event_loop_running() -> None:
    """A child forked inside a running loop would find it running and could start none."""
    import asyncio
    import sys
    import threading

    from asyncrpc.ops.up_fork import can_fork

    async def inside_a_loop() -> bool:
        return can_fork()

    linux = sys.platform.startswith("linux")
    assert can_fork() == (linux and threading.active_count() == 1)
    assert asyncio.run(inside_a_loop()) is False
