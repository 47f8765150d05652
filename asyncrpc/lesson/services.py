"""The durable functions of the three flows: read this file to learn the API.

Each function runs on its own node and calls the next one by *name* on
another node's *group* (the groups are named in :mod:`asyncrpc.lesson.topology`), so
every arrow of a flow crosses a process boundary. Calls made through ``ctx``
are durable: each one is a promise on the Resonate server, so a flow survives
any of its processes crashing and resumes where it stopped once a node of
that group is back.

The original example's vocabulary, and what it is in resonate-sdk 0.8::

    rfc       await ctx.options(target=group).rpc("fn", ...)   call remote, wait now
    rfi       future = ctx.options(target=group).rpc("fn", ...) call remote, wait later
              ...; value = await future
    detached  await ctx.options(target=group).detached("fn", ...)  start it, never wait

Resonate resumes a function that waited on a remote call by running it again
from the top; calls that already finished return their stored results at
once. That is why the first log line of a function that waits on another
appears twice in a node's output.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from resonate.context import Context

from asyncrpc.lesson.topology import (
    SERVICE_B,
    SERVICE_C,
    SERVICE_E,
    SERVICE_F,
    SERVICE_H,
    SERVICE_I,
)

log = logging.getLogger(__name__)


# ── Await chain ──────────────────────────────────────────────────────────────
# Ephemeral to Durable at the gateway, then rfc all the way down: foo (a)
# awaits bar (b), which awaits baz (c). baz returns 1 and each caller adds 1,
# so the gateway answers 3.


async def foo(ctx: Context) -> int:
    """Await chain, step 1 (node a): rfc bar on service-b, add 1."""
    log.info("[%s] running foo: calling bar", ctx.info.id)
    value: int = await ctx.options(target=SERVICE_B).rpc("bar")
    log.info("[%s] foo: bar returned %s, returning %s", ctx.info.id, value, value + 1)
    return value + 1


async def bar(ctx: Context) -> int:
    """Await chain, step 2 (node b): rfc baz on service-c, add 1."""
    log.info("[%s] running bar: calling baz", ctx.info.id)
    value: int = await ctx.options(target=SERVICE_C).rpc("baz")
    log.info("[%s] bar: baz returned %s, returning %s", ctx.info.id, value, value + 1)
    return value + 1


async def baz(ctx: Context) -> int:
    """Await chain, step 3 (node c): the end of the chain, returns 1."""
    log.info("[%s] running baz", ctx.info.id)
    return 1


# ── Detached chain ───────────────────────────────────────────────────────────
# Ephemeral to Durable at the gateway, which answers as soon as qux's promise
# exists. Each step then starts the next one *detached*: it returns at once
# (with the id of the step it started) and nobody waits for the chain. The
# last step, cog, logs what it got and keeps it as its result.


async def qux(ctx: Context, n: int) -> str:
    """Detached chain, step 1 (node d): start quz(n + 1) on service-e detached."""
    log.info("[%s] running qux(%s): starting quz(%s), not waiting", ctx.info.id, n, n + 1)
    return await ctx.options(target=SERVICE_E).detached("quz", n + 1)


async def quz(ctx: Context, n: int) -> str:
    """Detached chain, step 2 (node e): start cog(n + 1) on service-f detached."""
    log.info("[%s] running quz(%s): starting cog(%s), not waiting", ctx.info.id, n, n + 1)
    return await ctx.options(target=SERVICE_F).detached("cog", n + 1)


async def cog(ctx: Context, n: int) -> int:
    """Detached chain, step 3 (node f): report the value that reached the end."""
    log.info("[%s] cog received %s", ctx.info.id, n)
    return n


# ── Fan-out workflow ─────────────────────────────────────────────────────────
# Ephemeral to Durable at the gateway; zim is the workflow. It rfi's rax and
# dop (both start at once, each on its own node), then awaits both futures
# and adds them to its own input: 1 + 1 + 1 = 3.


async def zim(ctx: Context, n: int) -> int:
    """Fan-out workflow (node g): rfi rax on service-h and dop on service-i, await both."""
    log.info("[%s] running zim(%s): starting rax and dop", ctx.info.id, n)
    rax_future = ctx.options(target=SERVICE_H).rpc("rax")
    dop_future = ctx.options(target=SERVICE_I).rpc("dop")
    total: int = n + await rax_future + await dop_future
    log.info("[%s] zim: returning %s", ctx.info.id, total)
    return total


async def rax(ctx: Context) -> int:
    """Fan-out step (node h): returns 1."""
    log.info("[%s] running rax", ctx.info.id)
    return 1


async def dop(ctx: Context) -> int:
    """Fan-out step (node i): returns 1."""
    log.info("[%s] running dop", ctx.info.id)
    return 1


#: Every durable function by the name it is registered and called under.
FUNCTIONS: dict[str, Callable[..., Awaitable[object]]] = {
    fn.__name__: fn for fn in (foo, bar, baz, qux, quz, cog, zim, rax, dop)
}
