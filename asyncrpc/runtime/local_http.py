"""One HTTP request from a CLI command to the supervisor or the gateway, over the standard library.

Every command pays for its HTTP client's import before it does anything, and
``http.client`` loads several times faster than httpx (docs/architecture.md
has the measurement). What a command sends is a handful of JSON requests, so a
connection per request is enough and nothing here pools, retries or streams.
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
    target = address.path or "/"
    query = "&".join(part for part in (address.query, urllib.parse.urlencode(params or {})) if part)
    if query:
        target = f"{target}?{query}"
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
