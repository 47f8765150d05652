"""Start, re-attach to and inspect an invocation of a flow: the Ephemeral to Durable step.

A request arriving at the gateway (or the CLI) is *ephemeral*: if it is lost,
nothing remembers it. :func:`start` turns it into a *durable* invocation with
``resonate.options(target=group).rpc(id, function, ...)``: a promise on the
server, under an id the caller chooses. Asking again with the same id
re-attaches to that same promise (the functions do not run again), which is
what lets a caller that crashed or gave up come back for the result.

These are plain async functions over a :class:`~resonate.resonate.Resonate` client, so
the gateway and the CLI share them. A client made by :func:`bounded_network`
gives up on an unreachable server after a few seconds instead of retrying
forever, because an ephemeral caller should hear "server unreachable" rather
than hang.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from resonate.error import ConnectorError, ResonateError, ServerError
from resonate.handle import ResonateHandle
from resonate.resonate import Resonate
from resonate.retry import ExponentialBackoff
from resonate.types import PromiseRecord
from resonate_base.connections import Network

from asyncrpc.callgraph import function_of
from asyncrpc.http_network import server_network
from asyncrpc.topology import Flow, node_for_function

#: Seconds a caller waits for a flow's result before getting "still pending".
DEFAULT_WAIT = 60.0
#: Seconds one request to the server may take before the server counts as unreachable.
DEFAULT_REQUEST_TIMEOUT = 5.0

INVOCATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
VALID_ID_HINT = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


class FlowError(Exception):
    """Something a caller should be told about in words, not a stack trace."""


class InvalidInvocationId(FlowError):
    """The invocation id cannot be used."""


class ServerUnavailable(FlowError):
    """The Resonate server did not answer."""


class ServerRefused(FlowError):
    """The Resonate server answered with an error."""


class UnknownInvocation(FlowError):
    """No invocation has this id."""


class InvocationConflict(FlowError):
    """The id is taken by an invocation of a different function."""


class FlowFailed(FlowError):
    """The invocation settled, but not with a value."""

    def __init__(self, invocation: Invocation) -> None:
        super().__init__(f"invocation {invocation.id} {invocation.state}: {invocation.error}")
        self.invocation = invocation


@dataclass(frozen=True)
class Invocation:
    """A durable promise as a caller sees it: who runs it and how it ended."""

    id: str
    state: str
    function: str | None = None
    args: tuple[Any, ...] = ()
    result: Any = None
    error: str | None = None
    group: str | None = None
    created_at: int | None = None
    settled_at: int | None = None

    @property
    def done(self) -> bool:
        return self.state != "pending"

    def to_json(self) -> dict[str, Any]:
        """``{"id", "state", "result"?, "error"?, "function"?}``."""
        body: dict[str, Any] = {"id": self.id, "state": self.state}
        if self.state == "resolved":
            body["result"] = self.result
        elif self.error is not None:
            body["error"] = self.error
        if self.function is not None:
            body["function"] = self.function
        return body


@dataclass(frozen=True)
class Creation:
    """What one ``promise.create`` found: a new promise, or one that already existed."""

    existed: bool
    function: str | None


class CreationLedger:
    """The outcome of each ``promise.create`` a network carried, until a caller reads it.

    The SDK's ``rpc`` creates the invocation's promise but keeps the answer to
    itself; reading it here spares :func:`start` a ``promise.get`` per call
    to tell a new invocation from a re-attached one. Bounded: an outcome
    nobody asks for is forgotten after ``limit`` newer ones.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._outcomes: OrderedDict[str, list[Creation]] = OrderedDict()

    def record(self, response: str, sent_at: int | None = None) -> None:
        """Note the outcome if ``response`` answers a ``promise.create``.

        Resonate's servers answer 200 whether the promise is new or not, so a
        promise counts as new when it was created no earlier than ``sent_at``
        (ms, when the request left); a server answering 201 for a new one is
        understood too.
        """
        if "promise.create" not in response:
            return
        try:
            envelope = json.loads(response)
            promise = envelope["data"]["promise"]
            status = envelope["head"]["status"]
            promise_id = promise["id"]
        except (ValueError, TypeError, KeyError):
            return
        if status not in (200, 201) or not isinstance(promise_id, str):
            return
        created_at = promise.get("createdAt")
        fresh = status == 201 or (
            sent_at is not None and isinstance(created_at, int) and created_at >= sent_at
        )
        creation = Creation(existed=not fresh, function=function_of(promise))
        self._outcomes.setdefault(promise_id, []).append(creation)
        while len(self._outcomes) > self._limit:
            self._outcomes.popitem(last=False)

    def take(self, promise_id: str) -> Creation | None:
        """The oldest unread outcome of creating ``promise_id`` (None if there is none)."""
        outcomes = self._outcomes.get(promise_id)
        if not outcomes:
            return None
        creation = outcomes.pop(0)
        if not outcomes:
            del self._outcomes[promise_id]
        return creation


class BoundedNetwork:
    """A connection to the server whose every request gives up after ``timeout`` seconds.

    The SDK retries an unreachable server forever, which is right for a
    worker and wrong for a caller waiting on an HTTP response. It also keeps
    a :class:`CreationLedger` of the promises it created, for :func:`start`.
    """

    def __init__(self, inner: Network, url: str, timeout: float) -> None:
        self._inner = inner
        self._url = url
        self._timeout = timeout
        self.creations = CreationLedger()

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        sent_at = time.time_ns() // 1_000_000
        try:
            response = await asyncio.wait_for(self._inner.send(req, headers), self._timeout)
        except TimeoutError:
            reason = f"no answer from the Resonate server at {self._url} within {self._timeout:g}s"
            raise ConnectorError(TimeoutError(reason)) from None
        self.creations.record(response, sent_at)
        return response


def bounded_network(
    url: str, token: str | None = None, timeout: float = DEFAULT_REQUEST_TIMEOUT
) -> BoundedNetwork:
    """A network for callers: requests to ``url`` that fail within ``timeout`` seconds."""
    backoff = ExponentialBackoff(initial=0.2, max_delay=1.0)
    return BoundedNetwork(server_network(url, auth=token, backoff=backoff), url, timeout)


def check_invocation_id(invocation_id: str) -> str:
    if not INVOCATION_ID.fullmatch(invocation_id):
        raise InvalidInvocationId(
            f"invocation id {invocation_id!r} is not valid: use {VALID_ID_HINT}"
        )
    return invocation_id


def _unavailable(exc: ResonateError) -> FlowError:
    """The caller's view of a failed request to the server."""
    if isinstance(exc, ServerError):
        return ServerRefused(f"the Resonate server refused the request ({exc.code}): {exc.message}")
    detail = exc.error if isinstance(exc, ConnectorError) else exc
    return ServerUnavailable(f"the Resonate server is unreachable: {detail}")


def _describe(record: PromiseRecord) -> Invocation:
    """Turn a decoded promise record into an :class:`Invocation`."""
    param = record.param.data if isinstance(record.param.data, dict) else {}
    function = param.get("func") if isinstance(param.get("func"), str) else None
    args = tuple(param.get("args") or ())
    value = record.value.data
    result, error = None, None
    if record.state == "resolved":
        result = value
    elif record.state == "rejected":
        # Only the message: never unpickle what a server hands us.
        error = value.get("message") if isinstance(value, dict) else str(value)
        error = error or "the function raised an error"
    elif record.state == "rejected_canceled":
        error = "the invocation was canceled"
    elif record.state == "rejected_timedout":
        error = "the invocation timed out"
    group = None
    if function is not None:
        try:
            group = node_for_function(function).group
        except KeyError:
            group = None
    return Invocation(
        id=record.id,
        state=record.state,
        function=function,
        args=args,
        result=result,
        error=error,
        group=group,
        created_at=record.created_at or None,
        settled_at=record.settled_at,
    )


async def inspect(client: Resonate, invocation_id: str) -> Invocation:
    """The invocation's current state (and result, when it has one)."""
    check_invocation_id(invocation_id)
    try:
        record = await client.promises.get(invocation_id)
    except ServerError as exc:
        if exc.code == 404:
            raise UnknownInvocation(f"no invocation with id {invocation_id!r}") from None
        raise _unavailable(exc) from None
    except ResonateError as exc:
        raise _unavailable(exc) from None
    return _describe(record)


async def start(
    client: Resonate,
    flow: Flow,
    invocation_id: str | None = None,
    creations: CreationLedger | None = None,
) -> tuple[ResonateHandle[Any], bool]:
    """Start ``flow`` under ``invocation_id`` (default: the flow's fixed id), or re-attach.

    Returns the handle and whether the invocation already existed. Raises
    :class:`InvocationConflict` when the id belongs to another function.

    Given the ``creations`` of the client's :class:`BoundedNetwork`, both are
    read from the answer to the create itself (creating a promise that exists
    changes nothing on the server); otherwise from a ``promise.get`` first.
    """
    invocation_id = check_invocation_id(flow.default_id if invocation_id is None else invocation_id)
    existing: Creation | None = None
    if creations is None:
        existing = await _lookup(client, invocation_id)
        _check_same_function(flow, invocation_id, existing)
    handle = client.options(target=flow.entry_group).rpc(
        invocation_id, flow.entry_function, *flow.entry_args
    )
    try:
        await handle.id()  # the promise now exists on the server: the flow is durable
    except ResonateError as exc:
        raise _unavailable(exc) from None
    if creations is not None:
        created = creations.take(invocation_id)
        if created is None:  # its answer was forgotten (a flood of creates): ask the server
            existing = await _lookup(client, invocation_id)
        else:
            existing = created if created.existed else None
        _check_same_function(flow, invocation_id, existing)
    return handle, existing is not None


async def _lookup(client: Resonate, invocation_id: str) -> Creation | None:
    """How an existing invocation looks as a :class:`Creation` (None: there is none)."""
    try:
        invocation = await inspect(client, invocation_id)
    except UnknownInvocation:
        return None
    return Creation(existed=True, function=invocation.function)


def _check_same_function(flow: Flow, invocation_id: str, existing: Creation | None) -> None:
    if existing is not None and existing.function != flow.entry_function:
        raise InvocationConflict(
            f"invocation id {invocation_id!r} is already used by "
            f"{existing.function or 'something else'}, not by {flow.name} "
            f"({flow.entry_function}); choose another id"
        )


async def result(client: Resonate, handle: ResonateHandle[Any], wait: float) -> tuple[bool, Any]:
    """Wait up to ``wait`` seconds: ``(True, value)``, or ``(False, None)`` if still pending.

    Raises :class:`FlowFailed` when the invocation settled without a value.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    invocation_id = await handle.id()
    while True:
        waiting = asyncio.ensure_future(handle.result())
        done, _ = await asyncio.wait({waiting}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            waiting.cancel()
            return False, None
        if waiting.exception() is None:
            return True, waiting.result()
        # Read the stored outcome rather than re-raising whatever the SDK rebuilt.
        invocation = await inspect(client, invocation_id)
        if invocation.state != "pending":
            raise FlowFailed(invocation)
        # Still running: the SDK gave up on it early (its listener refresh can race the
        # promise's creation and take a 404 for "gone"). Listen again.
        handle = await client.get(invocation_id)


async def call_graph(client: Resonate, root_id: str) -> list[Invocation]:
    """Every promise of an invocation's call graph (``resonate:origin`` = the root id).

    Uses ``promise.search`` with a tag filter, which the real Resonate server
    and the embedded one both answer. Detached steps share the origin, so the
    detached chain's ``cog`` is found here too.
    """
    check_invocation_id(root_id)
    found: list[Invocation] = []
    cursor: str | None = None
    try:
        while True:
            page = await client.promises.search(None, {"resonate:origin": root_id}, 100, cursor)
            found.extend(_describe(record) for record in page.promises)
            cursor = page.cursor
            if not cursor:
                break
    except ResonateError as exc:
        raise _unavailable(exc) from None
    if not found:
        raise UnknownInvocation(f"no invocation with id {root_id!r}")
    return sorted(found, key=lambda step: (step.id != root_id, step.created_at or 0, step.id))
