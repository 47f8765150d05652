"""The flows' functions in one process on the SDK's in-process server, for fast unit tests."""

from __future__ import annotations

from resonate.connections import LocalConnection
from resonate.resonate import Resonate
from resonate.retry import Never

from asyncrpc import services


def in_process(delay: float = 0.0) -> tuple[Resonate, LocalConnection]:
    """One process that registers every function; the local server routes all work to it.

    Needs a running event loop. ``delay`` is the crash-demo pause every function takes.
    """
    server = LocalConnection(tick_interval=0.05)
    resonate = Resonate(network=server, retry_policy=Never(), env={}, subscription_refresh_secs=0)
    for name, function in services.FUNCTIONS.items():
        resonate.register(function, name=name)
    resonate.with_dependency(services.Pause(delay))
    return resonate, server
