"""A service of the original example: one durable function in its group, the SDK's defaults.

The original example's services a, b and c are each a ``Resonate(url=...,
group=...)`` that registers its function and waits: the SDK's own HTTP
connection (aiohttp), its SSE poll stream, its heartbeat, asyncio's own event
loop, and a line printed per step. This program is that, with the lesson's
functions (:mod:`asyncrpc.lesson.services`, the original's functions) and
the server URL and unique id from the command line, so the ratios can run the
original topology (its Flask gateway, :mod:`benchmarks.baseline_gateway`,
and these services) next to ours.

    uv run python -m benchmarks.original_node a --server-url URL --id a-orig
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated

import typer
from resonate.resonate import Resonate

from asyncrpc.lesson import services, topology
from asyncrpc.runtime import config

cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    name: Annotated[str, typer.Argument(help=f"Which node: {', '.join(topology.NODES)}.")],
    server_url: Annotated[
        str, typer.Option(help="Resonate server URL.")
    ] = config.DEFAULT_SERVER_URL,
    pid: Annotated[str, typer.Option("--id", help="Unique id.")] = "",
) -> None:
    """Run one original-style service in the foreground."""
    if name not in topology.NODES:
        raise typer.BadParameter(f"unknown node {name!r}; valid: {', '.join(topology.NODES)}")
    node = topology.NODES[name]
    # The original prints a line per step; the lesson's functions log theirs.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    logging.getLogger("resonate").setLevel(logging.WARNING)

    async def serve() -> None:
        resonate = Resonate(url=server_url, group=node.group, pid=pid or None)
        resonate.register(services.FUNCTIONS[node.function], name=node.function)
        print(f"{name} ({node.function}) in {node.group}: running", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    cli()
