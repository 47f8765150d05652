"""The dashboard as its page sees it: the sign-in address, and the event feed read on a thread.

:func:`sign_in` asks `asyncrpc status --json` for the address a person opens
(``.../#token=SECRET``); a script sends that token as a bearer token.
:class:`Feed` reads ``/api/events`` as the page's EventSource does and keeps
every event with the moment it arrived, so a caller can wait for (and time)
the first ``status`` that shows a replica in a given state, or read what the
``invocations`` event lists.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from harness.processes import ASYNCRPC


@dataclass(frozen=True)
class SignIn:
    """The dashboard's address (ending in ``/``) and the token that signs a client in."""

    url: str
    token: str

    @property
    def address(self) -> str:
        """What `asyncrpc ui` prints: the page, with the token after ``#token=``."""
        return f"{self.url}#token={self.token}"

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_in(env: Mapping[str, str]) -> SignIn:
    """The dashboard of the system in ``env``'s run directory, as `status --json` names it."""
    status = subprocess.run(
        [*ASYNCRPC, "status", "--json"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if status.returncode != 0:
        raise RuntimeError(f"asyncrpc status --json exited {status.returncode}: {status.stderr}")
    address = json.loads(status.stdout)["dashboard"]
    if not address:
        raise RuntimeError("asyncrpc status --json names no dashboard")
    parsed = urlparse(address)
    token = parse_qs(parsed.fragment)["token"][0]
    return SignIn(parsed._replace(fragment="").geturl(), token)


@dataclass(frozen=True)
class Event:
    """One event of the feed: its name, when it arrived (``time.monotonic``), its JSON."""

    name: str
    at: float
    data: Any

    def states(self) -> dict[str, str]:
        """Each replica's state, in a ``status`` event."""
        return {node["name"]: node["state"] for node in self.data["nodes"]}


class Feed:
    """``/api/events`` read on a thread while the block runs; every event, timed on arrival."""

    def __init__(self, dashboard: SignIn, timeout: float = 30.0) -> None:
        self._dashboard = dashboard
        self._timeout = timeout
        self._events: list[Event] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="dashboard-feed", daemon=True)

    def __enter__(self) -> Feed:
        self._thread.start()
        self.wait_for("status", lambda _: True, 0.0, self._timeout, "the first status")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._closing.set()
        # The feed sends a status at least once a second (uptimes), so the thread sees the flag.
        self._thread.join(timeout=self._timeout)

    def _read(self) -> None:
        url = f"{self._dashboard.url}api/events"
        headers = self._dashboard.bearer
        try:
            with httpx.stream("GET", url, headers=headers, timeout=self._timeout) as events:
                events.raise_for_status()
                name = ""
                for line in events.iter_lines():
                    if self._closing.is_set():
                        return
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: ") and name:
                        event = Event(name, time.monotonic(), json.loads(line[len("data: ") :]))
                        with self._changed:
                            self._events.append(event)
                            self._changed.notify_all()
        except Exception as error:  # the waiter reports it
            with self._changed:
                self._failure = error
                self._changed.notify_all()

    def wait_for(
        self, name: str, shows: Callable[[Event], bool], since: float, timeout: float, what: str
    ) -> Event:
        """The first ``name`` event that arrived at ``since`` (monotonic) or later and ``shows``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events:
                    if event.name == name and event.at >= since and shows(event):
                        return event
                if self._failure is not None:
                    raise RuntimeError(f"the dashboard's feed failed: {self._failure!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    last = next((e.data for e in reversed(self._events) if e.name == name), None)
                    raise TimeoutError(f"no {name} event within {timeout:g}s shows {what}: {last}")
                self._changed.wait(left)

    def first(self, replica: str, state: str, since: float, timeout: float) -> Event:
        """The first status event at ``since`` or later that shows ``replica`` in ``state``."""
        return self.wait_for(
            "status",
            lambda event: event.states().get(replica) == state,
            since,
            timeout,
            f"{replica} {state}",
        )
