"""Every function of every node in one process, on the SDK's in-process server.

The local server routes all work to the one Resonate instance, which runs
whichever function a message names: the same durable calls as the whole
topology, with no sockets, no HTTP and no SQLite.
"""

from __future__ import annotations

from resonate.connections.local import LocalConnection, ServerState
from resonate.resonate import Resonate
from resonate.retry import Never

from asyncrpc import services
from asyncrpc.node import with_pause


def in_process(
    delay: float = 0.0, state: ServerState | None = None
) -> tuple[Resonate, LocalConnection]:
    """One Resonate that registers every function, and its local server.

    Needs a running event loop. ``delay`` is the crash-demo pause (a durable
    sleep) every function takes before it returns; ``state`` replaces the
    local server's protocol state machine (default: the SDK's own).
    """
    server = LocalConnection(tick_interval=0.05)
    if state is not None:
        server.state = state
    resonate = Resonate(network=server, retry_policy=Never(), env={}, subscription_refresh_secs=0)
    for name, function in services.FUNCTIONS.items():
        resonate.register(with_pause(function, delay), name=name)
    return resonate, server
