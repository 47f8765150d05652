"""Who may use the dashboard: this machine's browser, signed in with the run's secret.

The dashboard listens on 127.0.0.1 only, and it kills and starts processes,
so:

- a request must name that address and port in its ``Host`` (a page served
  from elsewhere cannot reach it through DNS rebinding), and a request to the
  API must come from the dashboard's own page or from a program (no
  ``Origin``, no ``Sec-Fetch-Site`` of another site; see
  :class:`~asyncrpc.runtime.browser_guard.BrowserGuard`);
- the API wants a secret: the supervisor makes one per run and keeps it in the
  run directory's state file (private to the user), so only the user who ran
  `up` can read it. With ``RESONATE_TOKEN`` set, that token is taken too. A
  program sends either as ``Authorization: Bearer <secret>``; a browser opens
  the address `asyncrpc ui` prints (``/#token=<secret>``), whose page trades
  the secret for a session at once (``POST /api/session``) and drops it from
  the address.

The session is a random id in an HttpOnly, SameSite=Strict cookie, known to
this process only, never the secret: a cookie is sent to every port of
127.0.0.1, so whatever else listens there sees the session id, which is worth
nothing once the run ends, and never a secret that outlives it.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.requests import Request

from asyncrpc.runtime.browser_guard import BrowserGuard, Refusal

#: Sessions kept at most; signing in once more forgets the oldest.
MAX_SESSIONS = 64


@dataclass
class Access:
    """The rules for one dashboard: its port, the secrets it takes, its open sessions."""

    port: int
    #: The run's secret, from the supervisor (the state file holds it).
    secret: str
    #: ``RESONATE_TOKEN``, taken as well when set.
    token: str | None = None
    _sessions: OrderedDict[str, None] = field(default_factory=OrderedDict)

    @property
    def cookie(self) -> str:
        """The session cookie's name; one per port, so two dashboards keep their own."""
        return f"asyncrpc_dashboard_{self.port}"

    @property
    def guard(self) -> BrowserGuard:
        return BrowserGuard(hosts=frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"}))

    def refusal(self, request: Request) -> Refusal | None:
        """Why ``request`` is refused before any secret is asked for; None when it is not.

        The page and its files only need the right ``Host``: following a link to
        the dashboard is fine, and its API is what a page elsewhere must not use.
        """
        api = request.url.path.startswith("/api/")
        return self.guard.refusal(request.headers.raw, pages_too=api)

    def accepts(self, given: str | None) -> bool:
        """Whether ``given`` is the run's secret or ``RESONATE_TOKEN``."""
        if not given:
            return False
        wanted = [self.secret, *([self.token] if self.token else [])]
        sent = given.encode()
        # Every secret is compared, so the time taken says nothing of which one matched.
        matches = [secrets.compare_digest(sent, secret.encode()) for secret in wanted]
        return any(matches)

    def open_session(self) -> str:
        """A new session id, valid until the supervisor stops."""
        session = secrets.token_urlsafe(32)
        self._sessions[session] = None
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def authorized(self, request: Request) -> bool:
        """The request carries a secret (bearer header) or the cookie of an open session."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.accepts(credentials):
            return True
        session = request.cookies.get(self.cookie)
        return session is not None and session in self._sessions
