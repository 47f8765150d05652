"""The HTTP client every load uses: aiohttp, because the load generator shares the two cores.

httpx's ``AsyncClient`` spends several times aiohttp's CPU per request in the
client (see docs/performance.md). On two cores a heavy client takes CPU from
the system it measures, and unevenly: an HTTP gateway's load pays it, the direct
SDK client (aiohttp inside the SDK) does not. So the loads (round trip,
throughput, baseline, server alone) go through aiohttp; control requests
(readiness, reading the server) keep httpx.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

JSON_HEADERS = {"content-type": "application/json"}


def session(base_url: str, connections: int, timeout: float) -> aiohttp.ClientSession:
    """A keep-alive session to ``base_url`` with at most ``connections`` connections."""
    return aiohttp.ClientSession(
        base_url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def post(
    client: aiohttp.ClientSession,
    path: str,
    params: dict[str, str] | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    """POST (a JSON ``body``, if any); the status and the decoded JSON answer (None if not JSON)."""
    data = None if body is None else json.dumps(body)
    async with client.post(path, params=params, data=data, headers=JSON_HEADERS) as response:
        raw = await response.read()
        status = response.status
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def envelope(kind: str, **data: Any) -> dict[str, Any]:
    """A protocol request as the server's ``POST /`` takes it."""
    return {"kind": kind, "head": {"corrId": "bench", "version": ""}, "data": data}
