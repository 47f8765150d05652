"""Every function of every node in one process, on the SDK's in-process server.

The local server routes all work to the one Resonate instance, which runs
whichever function a message names: the same durable calls as the whole
topology, with no sockets, no HTTP and no SQLite.
"""

from __future__ import annotations

from collections.abc import Callable

from resonate.connections.local import LocalConnection, ServerState
from resonate.resonate import Resonate
from resonate.retry import Never
from resonate_base.connections import Network

from asyncrpc.lesson import services
from asyncrpc.node.worker import with_pause


class ServerRequests:
    """The in-process server as a request channel only: it starts and stops as the source.

    The server is both the client's request channel and its source; a wrapper
    around its requests (to watch or count them) must not start it a second time.
    """

    def __init__(self, server: LocalConnection) -> None:
        self.server = server

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        return await self.server.send(req, headers)


def in_process(
    delay: float = 0.0,
    state: ServerState | None = None,
    requests: Callable[[Network], Network] | None = None,
) -> tuple[Resonate, LocalConnection]:
    """One Resonate that registers every function, and its local server.

    Needs a running event loop. ``delay`` is the crash-demo pause (a durable
    sleep) every function takes before it returns; ``state`` replaces the
    local server's protocol state machine (default: the SDK's own);
    ``requests`` wraps the channel the client's requests go out on.
    """
    server = LocalConnection(tick_interval=0.05)
    if state is not None:
        server.state = state
    network: Network = server if requests is None else requests(ServerRequests(server))
    resonate = Resonate(
        network=network,
        sources=[server],
        retry_policy=Never(),
        env={},
        subscription_refresh_secs=0,
    )
    for name, function in services.FUNCTIONS.items():
        resonate.register(with_pause(function, delay), name=name)
    return resonate, server
