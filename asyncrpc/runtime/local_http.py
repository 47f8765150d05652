"""One HTTP request over the standard library: a CLI command's, or the supervisor's health check.

Every command pays for its HTTP client's import before it does anything, and
``http.client`` loads several times faster than httpx (docs/architecture.md
has the measurement). What a command sends is a handful of JSON requests, so a
connection per request is enough and nothing here pools, retries or streams.
:func:`status_of` is the same for an event loop: the supervisor checks a
replica's health URL with it while the replicas start, where an httpx client's
first request costs about 0.1 s of CPU (its transports, h11, anyio's backend).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Unreachable(Exception):
    """No answer: nothing listens, the connection broke, or the answer was late or unreadable."""

    def __init__(self, why: str, connected: bool) -> None:
        super().__init__(why)
        #: False when no connection was made at all (nothing listens there).
        self.connected = connected


@dataclass(frozen=True)
class HttpReply:
    """What the supervisor or the gateway replied to one request: its status and body."""

    status: int
    text: str

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.text)


def request(
    url: str,
    method: str = "GET",
    *,
    params: Mapping[str, str] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
) -> HttpReply:
    """``method`` ``url`` (http or https) with ``params`` in its query and ``body`` as JSON."""
    address = urllib.parse.urlsplit(url)
    if address.scheme not in ("http", "https") or not address.hostname:
        raise Unreachable(f"{url!r} is not an http:// or https:// URL", connected=False)
    target = _target(address, params)
    sent = dict(headers or {})
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    kind = http.client.HTTPSConnection if address.scheme == "https" else http.client.HTTPConnection
    try:
        connection = kind(address.hostname, address.port, timeout=timeout)
    except ValueError as error:  # a port that is not a number, or out of range
        raise Unreachable(str(error), connected=False) from None
    try:
        try:
            connection.connect()
        except OSError as error:
            raise Unreachable(str(error), connected=False) from None
        try:
            connection.request(method, target, body=payload, headers=sent)
            response = connection.getresponse()
            return HttpReply(response.status, response.read().decode(errors="replace"))
        except (OSError, http.client.HTTPException) as error:
            raise Unreachable(str(error) or type(error).__name__, connected=True) from None
    finally:
        connection.close()


async def status_of(url: str, timeout: float) -> int | None:
    """The status of ``GET url`` (http:// or https://), None when nothing answers in time.

    One request on a connection of its own over asyncio's streams; only the status line
    is read.
    """
    import asyncio  # here, not above: the CLI's commands import this module, and no asyncio

    address = urllib.parse.urlsplit(url)
    secure = address.scheme == "https"
    try:
        port = address.port or (443 if secure else 80)
    except ValueError:
        return None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                address.hostname or "", port, ssl=secure or None
            )
            head = f"GET {_target(address)} HTTP/1.0\r\nHost: {address.netloc}\r\n\r\n"
            writer.write(head.encode())
            line = await reader.readline()
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def _target(address: urllib.parse.SplitResult, params: Mapping[str, str] | None = None) -> str:
    """The request target: ``address``'s path (``/`` when empty) and its query, ``params`` added."""
    query = "&".join(part for part in (address.query, urllib.parse.urlencode(params or {})) if part)
    path = address.path or "/"
    return f"{path}?{query}" if query else path
