"""A worker that takes its task and keeps it, so the recovery benchmark can kill one mid-execution.

A real node's function finishes in a millisecond, or suspends at a durable
call (``ctx.sleep``, awaiting a child), and a suspended worker holds nothing.
To measure recovery from a worker that dies while it *executes* (holding the
task's lease), this joins NODE's group exactly like `asyncrpc node NODE`
(same :func:`asyncrpc.network.join.join`, same ``--ttl`` lease and heartbeat) but
registers NODE's function name with a body that prints ``holding`` and then
waits without any durable call, so the task stays acquired (and heartbeated)
until the process is killed. Only the benchmark runs it.

    uv run python -m benchmarks.stuck_worker c --server-url URL --ttl 2
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import typer
from resonate.context import Context

from asyncrpc.lesson import topology
from asyncrpc.network.join import join
from asyncrpc.runtime import config
from asyncrpc.runtime.process import ready_line, until_signalled

#: Printed (flushed) when the function starts, i.e. once the task is acquired.
HOLDING = "stuck worker: holding"


async def hold(ctx: Context, *args: Any) -> None:
    """Take the task and never finish it (no durable call: the lease stays held)."""
    print(HOLDING, flush=True)
    await asyncio.Event().wait()


async def serve(name: str, server_url: str, node_id: str, ttl: float, stop: asyncio.Event) -> None:
    node = topology.NODES[name]
    line = ready_line(node.name, node.group, node_id, server_url, stuck="yes", ttl=f"{ttl:g}s")
    resonate, _ = join(
        server_url,
        group=node.group,
        pid=node_id,
        ttl=ttl,
        on_first_connect=lambda: print(line, flush=True),
    )
    resonate.register(hold, name=node.function)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resonate.stop(), 2.0)


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    name: Annotated[str, typer.Argument(help=f"Node to stand in for: {', '.join(topology.NODES)}")],
    server_url: Annotated[str, typer.Option(help="Resonate server URL.")] = (
        config.DEFAULT_SERVER_URL
    ),
    node_id: Annotated[str, typer.Option("--id", help="Unique id.")] = "stuck-1",
    ttl: Annotated[float, typer.Option(help="Task lease, seconds.")] = config.DEFAULT_NODE_TTL,
) -> None:
    """Serve NODE's function name with a body that never finishes."""
    if name not in topology.NODES:
        raise typer.BadParameter(f"unknown node {name!r}; valid: {', '.join(topology.NODES)}")
    asyncio.run(until_signalled(lambda stop: serve(name, server_url, node_id, ttl, stop)))


if __name__ == "__main__":
    cli()
