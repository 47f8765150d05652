"""A tiny resonate-sdk worker/client used by the server's end-to-end tests.

`python -m tests.support.sdk_worker worker GROUP` serves the test functions in GROUP;
`python -m tests.support.sdk_worker call ID FUNC TARGET` invokes FUNC on TARGET and
prints `result=<value>`. Behaviour knobs come from the environment:
SLEEP_S (durable sleep in `leaf`), HANG_S (a non-durable pause in `leaf`,
to kill the worker while it executes), TTL_S (lease), PID.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from resonate.context import Context
from resonate.resonate import Resonate

ENV = os.environ
URL = ENV["RESONATE_URL"]


async def top(ctx: Context) -> int:
    return await ctx.options(target="t-mid").rpc("mid") + 1


async def mid(ctx: Context) -> int:
    return await ctx.options(target="t-leaf").rpc("leaf") + 1


async def leaf(ctx: Context) -> int:
    marker = ENV.get("MARKER")
    if marker:
        with Path(marker).open("a") as out:
            out.write(f"{ENV.get('PID', '?')} started {ctx.info.id}\n")
    if float(ENV.get("SLEEP_S", "0")) > 0:
        await ctx.sleep(timedelta(seconds=float(ENV["SLEEP_S"])))
    if float(ENV.get("HANG_S", "0")) > 0:
        await asyncio.sleep(float(ENV["HANG_S"]))
    return 1


async def worker(group: str) -> None:
    resonate = Resonate(
        url=URL,
        group=group,
        pid=ENV.get("PID"),
        ttl=timedelta(seconds=float(ENV.get("TTL_S", "60"))),
    )
    for fn in (top, mid, leaf):
        resonate.register(fn)
    print(f"worker {group} up", flush=True)
    await asyncio.Event().wait()


async def call(id: str, func: str, target: str) -> None:
    resonate = Resonate(url=URL, group="t-client", pid=ENV.get("PID"))
    handle = resonate.options(target=target).rpc(id, func)
    value = await handle.result()
    print(f"result={value}", flush=True)
    await resonate.stop()


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        asyncio.run(worker(sys.argv[2]))
    else:
        asyncio.run(call(*sys.argv[2:5]))
