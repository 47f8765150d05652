"""Who may use the dashboard: this machine's browser, and with a token set, only who knows it.

The dashboard listens on 127.0.0.1 only; on top of that a request must name
that address in its ``Host`` header (so a web page served from elsewhere cannot
reach it through DNS rebinding), and a request that changes something must
come from the dashboard's own page when the browser says where it comes from
(``Origin``). When ``RESONATE_TOKEN`` is set, the API also wants that token:
as ``Authorization: Bearer <token>`` (curl, tests) or in the cookie the page
gets by posting it to ``/api/session`` (an EventSource cannot send headers).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "asyncrpc_dashboard"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Access:
    """The rules for one dashboard: its port, and the token it wants (None: none)."""

    port: int
    token: str | None = None

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})

    def from_this_machine(self, request: Request) -> bool:
        """The Host names the dashboard, and a change comes from its own page (or no page)."""
        if request.headers.get("host") not in self.hosts:
            return False
        origin = request.headers.get("origin")
        if request.method in SAFE_METHODS or origin is None:
            return True
        return origin in {f"http://{host}" for host in self.hosts}

    def matches(self, given: str | None) -> bool:
        return self.token is None or (
            given is not None and secrets.compare_digest(given.encode(), self.token.encode())
        )

    def authorized(self, request: Request) -> bool:
        """No token is set, or the request carries it (bearer header or the page's cookie)."""
        if self.token is None:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.matches(credentials):
            return True
        return self.matches(request.cookies.get(COOKIE))
