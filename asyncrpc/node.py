"""Run one worker node, and join any process (worker or gateway) to the Resonate server.

A node has two identities: its *unique id* (the SDK's ``pid``: unicast, the
server addresses this one process) and its *group* (anycast: any one member
of the group gets work sent to the group). It registers the one durable
function :mod:`asyncrpc.topology` assigns to it, listens on the server's poll
stream, and prints a single ready line (starting with
:data:`asyncrpc.config.READY_MARKER`) once that stream is connected, because
only then can work addressed to its group reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import uvloop
from resonate.connections import SSEConnection
from resonate.resonate import Resonate
from resonate.retry import ExponentialBackoff
from resonate.send import Sender
from resonate.transport import Transport
from resonate_base.connections import Network

from asyncrpc import config, services, topology
from asyncrpc.heartbeat import IntervalHeartbeat
from asyncrpc.http_network import server_network

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

#: How long to wait for a clean SDK shutdown on SIGTERM/SIGINT.
STOP_TIMEOUT = 5.0
#: After this long without a poll stream, say that we are still trying.
CONNECT_NOTICE_AFTER = 3.0
#: Reconnect (and resend) quickly: the SDK's own ladder climbs to a minute,
#: too slow to watch a flow continue after the server restarts in a demo.
RECONNECT = ExponentialBackoff(initial=0.5, factor=2.0, max_delay=2.0)


class SettingsError(ValueError):
    """A node option or environment variable has a value we cannot use."""


class PollStream(SSEConnection):
    """The SDK's SSE poll source, telling us whether its stream is connected.

    :class:`SSEConnection` hands a successfully opened stream (2xx) to
    ``_read_stream`` and only returns from it when the stream ends; wrapping
    that one call is the narrowest way to observe the connection without
    copying the reconnect loop. ``on_first_connect`` runs once, before the
    first message is read, so a ready line comes before any work is logged.
    """

    def __init__(
        self,
        url: str,
        *,
        pid: str,
        group: str,
        auth: str | None = None,
        on_first_connect: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(url, pid=pid, group=group, auth=auth, backoff=RECONNECT)
        self.connected = asyncio.Event()
        self._on_first_connect = on_first_connect

    async def _read_stream(self, resp: aiohttp.ClientResponse) -> None:
        self.connected.set()
        if self._on_first_connect is not None:
            on_first_connect, self._on_first_connect = self._on_first_connect, None
            on_first_connect()
        try:
            await super()._read_stream(resp)
        finally:
            self.connected.clear()


def join(
    server_url: str,
    *,
    group: str,
    pid: str,
    token: str | None = None,
    ttl: float = config.DEFAULT_NODE_TTL,
    network: Network | None = None,
    subscription_refresh_secs: float = 60.0,
    on_first_connect: Callable[[], None] | None = None,
) -> tuple[Resonate, PollStream]:
    """Connect to the server as ``pid`` in ``group``. Needs a running event loop.

    ``network`` replaces the HTTP connection for requests (the gateway passes
    one that gives up instead of retrying forever).
    """
    stream = PollStream(
        server_url, pid=pid, group=group, auth=token, on_first_connect=on_first_connect
    )
    network = network or server_network(server_url, auth=token, backoff=RECONNECT)
    heartbeat = IntervalHeartbeat(pid, ttl / 2, Sender(Transport(network), token))
    resonate = Resonate(
        network=network,
        sources=[stream],
        heartbeat=heartbeat,
        group=group,
        pid=pid,
        ttl=timedelta(seconds=ttl),
        token=token,
        env={},
        subscription_refresh_secs=subscription_refresh_secs,
    )
    return resonate, stream


@dataclass(frozen=True)
class NodeSettings:
    """Everything one worker node needs, validated."""

    name: str
    node_id: str
    server_url: str
    ttl: float
    delay: float
    token: str | None = None

    @property
    def node(self) -> topology.Node:
        return topology.NODES[self.name]


def default_node_id(name: str, random_hex: Callable[[int], str] = secrets.token_hex) -> str:
    """``NAME-<4 hex>``: unique enough to tell replicas apart in logs."""
    return f"{name}-{random_hex(2)}"


def parse_seconds(value: str | float, what: str, *, allow_zero: bool) -> float:
    """A finite number of seconds, or a :class:`SettingsError` saying what is valid."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{what} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        valid = ">= 0" if allow_zero else "> 0"
        raise SettingsError(f"{what} must be a number of seconds {valid}, got {value!r}")
    return seconds


def check_node_id(node_id: str) -> str:
    """A unique id must be usable in the poll URL path: no '/', no spaces, not empty."""
    if not node_id or any(ch in node_id for ch in "/?#% \t\n:") or len(node_id) > 128:
        raise SettingsError(
            f"node id {node_id!r} is not valid: use 1-128 characters without "
            "'/', '?', '#', '%', ':' or spaces (e.g. b-1)"
        )
    return node_id


def node_settings(
    name: str,
    env: Mapping[str, str],
    *,
    server_url: str | None = None,
    node_id: str | None = None,
    delay: float | None = None,
    ttl: float | None = None,
    random_hex: Callable[[int], str] = secrets.token_hex,
) -> NodeSettings:
    """Options first, then environment variables, then defaults (see the brief's contract)."""
    if name not in topology.NODES:
        raise SettingsError(
            f"unknown node {name!r}; valid nodes: {', '.join(topology.NODES)} or {topology.GATEWAY}"
        )
    raw_delay = delay if delay is not None else env.get(config.ENV_DELAY) or 0.0
    raw_ttl = ttl if ttl is not None else env.get(config.ENV_TTL) or config.DEFAULT_NODE_TTL
    delay_what = "--delay" if delay is not None else config.ENV_DELAY
    ttl_what = "--ttl" if ttl is not None else config.ENV_TTL
    return NodeSettings(
        name=name,
        node_id=check_node_id(
            node_id or env.get(config.ENV_NODE_ID) or default_node_id(name, random_hex)
        ),
        server_url=check_server_url(config.server_url(env, server_url)),
        ttl=parse_seconds(raw_ttl, ttl_what, allow_zero=False),
        delay=parse_seconds(raw_delay, delay_what, allow_zero=True),
        token=env.get(config.ENV_TOKEN) or None,
    )


def check_server_url(url: str) -> str:
    """An http(s) URL with a host, e.g. http://127.0.0.1:8001."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise SettingsError(
            f"server URL {url!r} is not valid: expected http://HOST:PORT "
            f"(e.g. {config.DEFAULT_SERVER_URL})"
        )
    return url


def ready_line(name: str, group: str, node_id: str, server_url: str, **extra: object) -> str:
    """The one line a process prints when it can receive work."""
    fields = {"node": name, "group": group, "id": node_id, "server": server_url, **extra}
    return " ".join([config.READY_MARKER, *(f"{key}={value}" for key, value in fields.items())])


def announce(line: str) -> None:
    print(line, flush=True)


def configure_logging() -> None:
    """Our lines at INFO, the SDK's only when something is wrong; all on stdout."""
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    logging.getLogger("resonate").setLevel(logging.WARNING)


async def notice_if_slow(stream: PollStream, server_url: str) -> None:
    """Say once that we are still waiting, if the poll stream takes a while."""
    try:
        await asyncio.wait_for(stream.connected.wait(), CONNECT_NOTICE_AFTER)
    except TimeoutError:
        log.info("waiting for the Resonate server at %s ...", server_url)


async def run_worker(
    settings: NodeSettings, stop: asyncio.Event, out: Callable[[str], None] = announce
) -> None:
    """Serve this node's function until ``stop`` is set."""
    node = settings.node
    line = ready_line(
        node.name,
        node.group,
        settings.node_id,
        settings.server_url,
        function=node.function,
        ttl=f"{settings.ttl:g}s",
        delay=f"{settings.delay:g}s",
    )
    resonate, stream = join(
        settings.server_url,
        group=node.group,
        pid=settings.node_id,
        token=settings.token,
        ttl=settings.ttl,
        on_first_connect=lambda: out(line),
    )
    notice = asyncio.create_task(notice_if_slow(stream, settings.server_url))
    try:
        # No await since join(): no message can have arrived before these two lines.
        resonate.register(services.FUNCTIONS[node.function], name=node.function)
        resonate.with_dependency(services.Pause(settings.delay))
        await stop.wait()
    finally:
        notice.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resonate.stop(), STOP_TIMEOUT)


async def until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGTERM and SIGINT set ``stop`` for a clean exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def run(settings: NodeSettings) -> int:
    """Run a worker node in the foreground; 0 after a clean stop."""
    configure_logging()
    uvloop.run(until_signalled(lambda stop: run_worker(settings, stop)))
    return 0
