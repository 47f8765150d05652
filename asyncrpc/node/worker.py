"""Run one worker node: the durable function `asyncrpc.lesson.topology` gives it, in its group.

A node joins the server (:func:`asyncrpc.network.join.join`), registers its
one function from :mod:`asyncrpc.lesson.services`, listens on the server's poll
stream, and prints a single ready line (starting with
:data:`asyncrpc.runtime.config.READY_MARKER`) once that stream is connected, because
only then can work addressed to its group reach it.

For the crash demo, a node started with ``--delay SECONDS`` registers its
function wrapped by :func:`with_pause`: the function, then a durable sleep
before it returns, so there is time to kill a process mid-flow while the
function bodies stay only the lesson.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from resonate.context import Context
from resonate.resonate import Resonate

from asyncrpc.lesson import services, topology
from asyncrpc.network.join import Links, PollStream, join, links
from asyncrpc.network.leases import Leases
from asyncrpc.node import log_output
from asyncrpc.runtime import config, event_loop, numbers
from asyncrpc.runtime.collector import collect_less
from asyncrpc.runtime.errors import SettingsError
from asyncrpc.runtime.process import (
    announce,
    check_node_id,
    check_server_url,
    default_node_id,
    ready_line,
    until_signalled,
)

if TYPE_CHECKING:
    from asyncrpc.network.postgres_link import PostgresLink

log = logging.getLogger(__name__)

#: How long to wait for a clean SDK shutdown on SIGTERM/SIGINT.
STOP_TIMEOUT = 5.0
#: After this long without a poll stream, say that we are still trying.
CONNECT_NOTICE_AFTER = 3.0

DurableFunction = Callable[..., Awaitable[Any]]


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
    """Options first, then environment variables, then defaults; numbers read strictly.

    A bad value raises :class:`SettingsError` naming the option or variable and what is valid.
    """
    if name not in topology.NODES:
        raise SettingsError(
            f"unknown node {name!r}; valid nodes: {', '.join(topology.NODES)} or {topology.GATEWAY}"
        )
    return NodeSettings(
        name=name,
        node_id=check_node_id(
            node_id or env.get(config.ENV_NODE_ID) or default_node_id(name, random_hex)
        ),
        server_url=check_server_url(config.server_url(env, server_url)),
        ttl=numbers.option_or_env(
            ttl, "--ttl", env, config.ENV_TTL, numbers.POSITIVE_SECONDS, config.DEFAULT_NODE_TTL
        ),
        delay=numbers.option_or_env(delay, "--delay", env, config.ENV_DELAY, numbers.SECONDS, 0.0),
        token=env.get(config.ENV_TOKEN) or None,
    )


def with_pause(function: DurableFunction, seconds: float) -> DurableFunction:
    """``function``, then a durable sleep of ``seconds`` before it returns (0: ``function``).

    The sleep is ``ctx.sleep``: a timer promise on the server, nothing held in
    memory. When the function is resumed by running it again from the top,
    its finished calls and a sleep that is over return at once. The line
    logged after the sleep is logged by the one run that returns: a step that
    completed twice shows it twice.
    """
    if seconds <= 0:
        return function

    @functools.wraps(function)
    async def paused(ctx: Context, *args: Any) -> Any:
        value = await function(ctx, *args)
        log.info("[%s] sleeping %ss (durably) before returning", ctx.info.id, seconds)
        await ctx.sleep(timedelta(seconds=seconds))
        log.info("[%s] slept %ss, returning %s", ctx.info.id, seconds, value)
        return value

    return paused


async def notice_if_slow(stream: PollStream | PostgresLink, server_url: str) -> None:
    """Say once that we are still waiting, if the poll stream takes a while."""
    try:
        await asyncio.wait_for(stream.connected.wait(), CONNECT_NOTICE_AFTER)
    except TimeoutError:
        log.info("waiting for the Resonate server at %s ...", config.redacted(server_url))


def sdk_room(resonate: Resonate) -> Callable[[], int]:
    """How many more tasks ``resonate`` would start at once now: its free execute permits.

    The SDK runs at most ``max_concurrent_tasks`` tasks at once: each takes a permit
    of an :class:`asyncio.Semaphore` before its ``task.acquire`` (resonate-sdk 0.8.1
    keeps it as ``_runtime.execute_sema``; no public attribute says how many are
    free). Leases are taken for a node only for tasks its SDK starts at once
    (:class:`~asyncrpc.network.leases.Leases`). An SDK without that semaphore has no
    room as far as this says: its tasks are then handed over plainly.
    """
    semaphore = getattr(getattr(resonate, "_runtime", None), "execute_sema", None)
    if not isinstance(semaphore, asyncio.Semaphore):
        return lambda: 0

    def room() -> int:
        # A semaphore with waiters is locked whatever its count: they take the permits first.
        if semaphore.locked():
            return 0
        value = getattr(semaphore, "_value", 0)
        return value if isinstance(value, int) else 0

    return room


def take_leases(stream: object, resonate: Resonate, ttl_s: float) -> bool:
    """Have this node's tasks handed to it with their leases taken; whether they are.

    A resonate-pg link takes them in its dequeue; the embedded server's poll stream
    asks for executes that carry them. A node only: the gateway runs no tasks and
    takes no leases.
    """
    leases = Leases.for_ttl(ttl_s, sdk_room(resonate))
    if isinstance(stream, PollStream):
        return stream.take_leases(leases)
    from asyncrpc.network.postgres_link import PostgresLink

    if not isinstance(stream, PostgresLink):
        return False
    stream.take_leases(leases)
    return True


#: Allocations between two young collections: the default 700 runs one every few steps,
#: and a step makes a few hundred objects (:func:`~asyncrpc.runtime.collector.collect_less`).
YOUNG_COLLECTION_EVERY = 50_000


async def run_worker(
    settings: NodeSettings,
    stop: asyncio.Event,
    out: Callable[[str], None] = announce,
    make_links: Links = links,
) -> None:
    """Serve this node's function until ``stop`` is set.

    ``make_links`` makes the node's request channel and message source (a benchmark's
    tracer times them through it).
    """
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
        connection=make_links(
            settings.server_url,
            group=node.group,
            pid=settings.node_id,
            token=settings.token,
            on_first_connect=lambda: out(line),
        ),
    )
    take_leases(stream, resonate, settings.ttl)
    notice = asyncio.create_task(notice_if_slow(stream, settings.server_url))
    try:
        # No await since join(): no message can have arrived before this line.
        function = with_pause(services.FUNCTIONS[node.function], settings.delay)
        resonate.register(function, name=node.function)
        await stop.wait()
    finally:
        notice.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resonate.stop(), STOP_TIMEOUT)


def run(settings: NodeSettings) -> int:
    """Run a worker node in the foreground; 0 after a clean stop."""
    log_output.configure()
    collect_less(YOUNG_COLLECTION_EVERY)
    event_loop.run(until_signalled(lambda stop: run_worker(settings, stop)))
    return 0
