"""Refuse what a web page in the user's browser sends to a service on this machine.

Any page the user's browser opens can reach a service on 127.0.0.1: a page on
another site may send it a "simple" request (a form post, or ``fetch`` in
``no-cors`` mode with a ``text/plain`` body) without asking the service
first, and DNS rebinding lets a page's own host name resolve to 127.0.0.1.
Programs that are not browsers (the SDKs, curl, our own processes) send no
``Origin`` and no ``Sec-Fetch-Site``, and a ``Host`` that names the address
they dialled, so what :class:`BrowserGuard` refuses costs them nothing:

- a ``Host`` that does not name this machine, when the service listens on
  loopback only (DNS rebinding: the page's host name, resolved to 127.0.0.1);
- ``Sec-Fetch-Site: cross-site`` or ``same-site`` (a page elsewhere; a page on
  another port of 127.0.0.1 is the same site);
- an ``Origin`` other than the service's own, ``http://`` + its ``Host``
  (``null`` included: a sandboxed or local page);
- a body of type ``text/plain``, ``application/x-www-form-urlencoded`` or
  ``multipart/form-data``, the types a page may send without a CORS preflight
  (a 415). A page that sends a body of no type sends an ``Origin`` with it.

Anything else a page sends needs a preflight, which these services never answer.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

#: Content types a page may send with no CORS preflight (the Fetch standard's safelist).
SIMPLE_BODY_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
#: ``Sec-Fetch-Site`` values that name a page of another origin.
FOREIGN_SITES = frozenset({b"cross-site", b"same-site"})
#: Characters of a header value quoted in a refusal at most.
QUOTED_CHARS = 80

#: The headers the guard reads, as ASGI names them (lowercase bytes).
_WANTED = frozenset({b"host", b"origin", b"sec-fetch-site", b"content-type"})


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, and with which status (403, or 415 for a body type)."""

    status: int
    reason: str


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), bracketed or not.

    Cached: every request on the server's fast lane asks this of its ``Host``, and
    the few names a machine's clients use are parsed once, not once per request.
    """
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name in a ``Host`` header: ``127.0.0.1`` of ``127.0.0.1:8001``, ``::1`` of ``[::1]``."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    name, colon, _ = host.partition(":")
    return name if colon else host


def _quoted(value: str) -> str:
    shown = value if len(value) <= QUOTED_CHARS else value[:QUOTED_CHARS] + "..."
    return repr(shown)


@dataclass(frozen=True)
class BrowserGuard:
    """The rules for one service.

    ``loopback_only``: the service listens on a loopback address, so a ``Host``
    must name this machine. ``hosts``: the exact ``Host`` values accepted (the
    dashboard names its port too); None accepts any name of this machine.
    """

    loopback_only: bool = True
    hosts: frozenset[str] | None = None

    def refusal(
        self, headers: Iterable[tuple[bytes, bytes]], *, pages_too: bool = True
    ) -> Refusal | None:
        """Why the request with these (ASGI) headers is refused; None when it is not.

        With ``pages_too`` False only ``Host`` is checked: for what any page may
        read or load (a health check, the dashboard's page), which a page of
        another origin cannot read back anyway.
        """
        found: dict[bytes, str] = {}
        for name, value in headers:
            if name in _WANTED and name not in found:
                found[name] = value.decode("latin-1")
        host = found.get(b"host")
        if host is not None and not self._host_allowed(host):
            return Refusal(
                403,
                f"refused: the Host {_quoted(host)} does not name this service; it answers "
                f"requests addressed to {self._named_hosts()} only",
            )
        if not pages_too:
            return None
        site = found.get(b"sec-fetch-site")
        if site is not None and site.encode("latin-1").lower() in FOREIGN_SITES:
            return Refusal(
                403,
                f"refused: a web page of another site sent this request (Sec-Fetch-Site: "
                f"{_quoted(site)}); only programs and this service's own pages may",
            )
        origin = found.get(b"origin")
        if origin is not None and (host is None or origin.lower() != f"http://{host}".lower()):
            return Refusal(
                403,
                f"refused: a web page at {_quoted(origin)} sent this request; only programs "
                "(which send no Origin) and this service's own pages may",
            )
        content_type = found.get(b"content-type")
        if content_type is not None:
            essence = content_type.partition(";")[0].strip().lower()
            if essence in SIMPLE_BODY_TYPES:
                return Refusal(
                    415,
                    f"refused: a body of type {_quoted(essence)} is what any web page may send; "
                    "send the body as Content-Type: application/json",
                )
        return None

    def _host_allowed(self, host: str) -> bool:
        if self.hosts is not None:
            return host.lower() in self.hosts
        return not self.loopback_only or is_loopback(host_name(host))

    def _named_hosts(self) -> str:
        if self.hosts is not None:
            return ", ".join(f"http://{host}" for host in sorted(self.hosts))
        return "localhost, 127.0.0.1 or [::1]"


#: Methods that read: a page may send them (a link, an image) but cannot read the answer.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

type Scope = MutableMapping[str, Any]
type Receive = Callable[[], Awaitable[dict[str, Any]]]
type Send = Callable[[dict[str, Any]], Awaitable[None]]
type App = Callable[[Scope, Receive, Send], Awaitable[None]]


class GuardMiddleware:
    """ASGI middleware refusing, as ``{"error": ...}``, what its guard refuses.

    A request that only reads gets the ``Host`` check alone: a link from
    another site may open the gateway's documentation, and no page of another
    origin can read an answer (no CORS headers are ever sent).
    """

    def __init__(self, app: App, guard: BrowserGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await refused(self.guard, scope, send):
            return
        await self.app(scope, receive, send)


async def refused(guard: BrowserGuard, scope: Scope, send: Send) -> bool:
    """Answer an HTTP request ``guard`` refuses, as ``{"error": ...}``; whether it did.

    A request that only reads (:data:`READ_METHODS`) gets the ``Host`` check alone.
    """
    refusal = guard.refusal(scope["headers"], pages_too=scope["method"] not in READ_METHODS)
    if refusal is None:
        return False
    body = json.dumps({"error": refusal.reason}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True
