"""The baseline: a gateway written the way the original example's newest gateway is written.

Its design, kept as is (neither slowed down nor sped up): Flask on
Werkzeug's threaded development server (``app.run``), one asyncio event loop
running forever in a background thread, a Resonate client (``url=``, group
``gateway``, SDK defaults otherwise) created on that loop, and *blocking*
route handlers that submit ``resonate.options(target=...).rpc(...)`` plus
``await handle.result()`` to that loop with ``run_coroutine_threadsafe`` and
block their thread on the future. The detached route submits the ``rpc``
and returns without waiting for the promise to exist; errors answer
``{"error": str(e)}`` with 500; each handler prints a line.

What differs from the original, none of it on the request path's cost:
the invocation id comes from ``?id=`` (default: the flow's fixed id, as in
the original), since a benchmark needs distinct ids; host, port, server URL
and unique id come from the command line; routes, functions and groups come
from :mod:`asyncrpc.lesson.topology`; the loop and client are made in ``main``
rather than at import time, so importing this module has no side effects.

    uv run python -m benchmarks.baseline_gateway --port 5001 --server-url URL
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import typer
from flask import Flask, jsonify, request
from resonate.resonate import Resonate

from asyncrpc.lesson import topology
from asyncrpc.runtime import config


def start_loop() -> asyncio.AbstractEventLoop:
    """An asyncio event loop running forever in a daemon thread."""
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    return loop


def run_async(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on the background loop and block until it completes."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def create_resonate(loop: asyncio.AbstractEventLoop, server_url: str, pid: str) -> Resonate:
    async def create() -> Resonate:
        # The SDK creates asyncio tasks and futures: build it on the running loop.
        return Resonate(url=server_url, group=topology.GATEWAY_GROUP, pid=pid)

    return run_async(loop, create())


def create_app(resonate: Resonate, loop: asyncio.AbstractEventLoop) -> Flask:
    """The Flask app: one blocking POST route per flow."""

    async def rpc_and_await(target: str, promise_id: str, func: str, *args: Any) -> Any:
        handle = resonate.options(target=target).rpc(promise_id, func, *args)
        return await handle.result()

    async def rpc_fire_and_forget(target: str, promise_id: str, func: str, *args: Any) -> None:
        resonate.options(target=target).rpc(promise_id, func, *args)

    app = Flask(topology.GATEWAY)

    def handler(flow: topology.Flow) -> Callable[[], Any]:
        def route_handler() -> Any:
            try:
                print(f"running {flow.name} route handler")
                promise_id = request.args.get("id", flow.default_id)
                if flow.waits_for_result:
                    message = run_async(
                        loop,
                        rpc_and_await(
                            flow.entry_group, promise_id, flow.entry_function, *flow.entry_args
                        ),
                    )
                    print("waiting on result")
                else:
                    run_async(
                        loop,
                        rpc_fire_and_forget(
                            flow.entry_group, promise_id, flow.entry_function, *flow.entry_args
                        ),
                    )
                    message = f"{flow.name} started"
                return jsonify({"message": message}), 200
            except Exception as e:
                print(e)
                return jsonify({"error": str(e)}), 500

        return route_handler

    for flow in topology.FLOWS.values():
        app.add_url_rule(flow.route, flow.name, handler(flow), methods=["POST"])
    return app


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = config.DEFAULT_GATEWAY_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = config.DEFAULT_HOST,
    server_url: Annotated[
        str, typer.Option(help="Resonate server URL.")
    ] = config.DEFAULT_SERVER_URL,
    pid: Annotated[str | None, typer.Option("--id", help="Unique id (default: random).")] = None,
) -> None:
    """Run the Flask baseline gateway in the foreground."""
    unique_id = pid or uuid.uuid4().hex
    loop = start_loop()
    resonate = create_resonate(loop, server_url, unique_id)
    app = create_app(resonate, loop)
    print(
        f"app node id {unique_id} | app node group {topology.GATEWAY_GROUP} "
        "| http capable | running",
        flush=True,
    )
    app.run(host=host, port=port)


if __name__ == "__main__":
    cli()
