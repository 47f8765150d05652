"""Start, re-attach to and read an invocation of a flow: the Ephemeral to Durable step.

A request arriving at the gateway is *ephemeral*: if it is lost, nothing
remembers it. :func:`start` turns it into a *durable* invocation: a promise on
the server, under an id the caller chooses, whose task the server sends to
the flow's entry group. Asking again with the same id re-attaches to that
same promise (the functions do not run again), which is what lets a caller
that crashed or gave up come back for the result.

A start is the SDK's own ``rpc`` (two requests: create, then register the
caller as a listener), so the promise carries exactly the tags the SDK gives
a top-level call. Whether it created the invocation or found it is read from
the create's own answer, the same on every Resonate server: through the
client's :class:`~asyncrpc.network.create_watch.CreateWatch`, the create
carries a fresh ``asyncrpc:request`` tag, and the server answers with the
promise it holds, whose tags are this request's only if this request created
it. The same answer names the promise's function, for the conflict check.

A start answers only once the server has confirmed the create: while the
server does not answer, the create is sent again for up to ``patience``
seconds (the gateway's ``start_timeout``), and past that the start fails with
:class:`NotStarted`, which says the invocation was not started and that the
same id may be sent again. Nothing reports a start the server never confirmed.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from resonate.error import ConnectorError, ResonateError, ServerError
from resonate.handle import ResonateHandle
from resonate.resonate import Resonate

from asyncrpc.gateway.deadlines import of_loop as deadlines_of
from asyncrpc.lesson.topology import Flow
from asyncrpc.network.create_watch import CreateWatch
from asyncrpc.network.eager import eager_tasks
from asyncrpc.protocol.errors import (
    InvalidInvocationId,
    InvocationConflict,
    InvocationError,
    InvocationFailed,
    NotStarted,
    ServerRefused,
    ServerUnavailable,
    UnknownInvocation,
)
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.readers.server_reader import AsyncServerReader

#: Seconds a caller waits for a flow's result before getting "still pending".
DEFAULT_WAIT = 60.0
#: How long an invocation may run before the server times it out (as the SDK's ``rpc``).
INVOCATION_TIMEOUT = timedelta(days=1)
#: The tag naming the request that created a promise.
REQUEST_TAG = "asyncrpc:request"

INVOCATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
VALID_ID_HINT = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


@dataclass(frozen=True)
class Started:
    """A started (or re-attached) invocation: its id, a handle on its result, which it was."""

    id: str
    handle: ResonateHandle[Any]
    reattached: bool


def check_invocation_id(invocation_id: str) -> str:
    if not INVOCATION_ID.fullmatch(invocation_id):
        raise InvalidInvocationId(
            f"invocation id {invocation_id!r} is not valid: use {VALID_ID_HINT}"
        )
    return invocation_id


def _unavailable(exc: ResonateError) -> InvocationError:
    """The caller's view of a failed request to the server."""
    if isinstance(exc, ServerError):
        return ServerRefused(f"the Resonate server refused the request ({exc.code}): {exc.message}")
    detail = exc.error if isinstance(exc, ConnectorError) else exc
    return ServerUnavailable(f"the Resonate server is unreachable: {detail}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def group_caller(client: Resonate, group: str) -> Resonate:
    """``client``'s handle for starting top-level invocations in ``group``, as the SDK's ``rpc``."""
    return client.options(target=group, timeout=INVOCATION_TIMEOUT)


async def start(
    client: Resonate,
    creates: CreateWatch,
    flow: Flow,
    invocation_id: str | None = None,
    *,
    request_id: Callable[[], str] = new_request_id,
    patience: float = 0.0,
    caller: Resonate | None = None,
) -> Started:
    """Start ``flow`` under ``invocation_id`` (default: the flow's fixed id), or re-attach.

    ``creates`` must be the network ``client`` sends through. The create is
    sent again while the server does not answer, for up to ``patience``
    seconds; then :class:`NotStarted`. Raises :class:`InvocationConflict`
    when the id belongs to another function. ``caller`` is ``client``'s handle for the
    flow's entry group (:func:`group_caller`), made here when not given.
    """
    invocation_id = check_invocation_id(flow.default_id if invocation_id is None else invocation_id)
    request = request_id()
    if caller is None:
        caller = group_caller(client, flow.entry_group)
    with creates.watch(invocation_id, {REQUEST_TAG: request}, patience) as answer:
        # ``rpc`` sends the create from a task of its own: started eagerly, the create
        # leaves in this turn of the event loop, not the next.
        with eager_tasks():
            handle = caller.rpc(invocation_id, flow.entry_function, *flow.entry_args)
        try:
            await handle.id()  # the promise now exists on the server: the flow is durable
        except ResonateError as exc:
            forget_failed_start(client, invocation_id, handle)
            if isinstance(exc, ConnectorError):
                reason = str(exc.error) or type(exc.error).__name__
                raise NotStarted(invocation_id, reason) from None
            raise _unavailable(exc) from None
    if not answer.done():
        raise RuntimeError(f"the create of {invocation_id!r} did not pass through {creates!r}")
    created = answer.result()
    if created is None:
        raise ServerRefused(
            f"the Resonate server's answer to creating {invocation_id!r} held no promise"
        )
    if created.tags.get(REQUEST_TAG) == request:
        # This request made it: with the param this create carried, so the function
        # it names is the flow's; nothing more of the promise needs decoding.
        return Started(invocation_id, handle, reattached=False)
    record = created.record()
    if record.function != flow.entry_function:
        raise InvocationConflict(
            f"invocation id {invocation_id!r} is already used by "
            f"{record.function or 'something else'}, not by {flow.name} "
            f"({flow.entry_function}); choose another id"
        )
    return Started(invocation_id, handle, reattached=True)


def forget_failed_start(client: Resonate, invocation_id: str, handle: ResonateHandle[Any]) -> None:
    """Drop the subscription a failed ``rpc`` leaves behind (resonate-sdk 0.8.1).

    ``rpc`` makes a subscription for its id before it sends the create, and
    keeps it when the create fails. The next ``rpc`` of that id (the caller
    sending it again) finds it, registers no listener, and its handle waits
    for the periodic refresh, or forever without one. The SDK's own ``get``
    drops its subscription when its request fails; this does the same for a
    start, and only for the subscription this start's handle holds. It reads
    the SDK's private state, so it does nothing if that is not there.
    """
    runtime = getattr(client, "_runtime", None)
    subs = getattr(runtime, "subs", None)
    mine: Any = getattr(handle, "_sub", None)
    if mine is None or mine.settled():
        return
    if isinstance(subs, dict) and subs.get(invocation_id) is mine:
        del subs[invocation_id]


async def read(reader: AsyncServerReader, invocation_id: str) -> PromiseRecord:
    """The invocation's current state (and result, when it has one)."""
    record = await reader.get(check_invocation_id(invocation_id))
    if record is None:
        raise UnknownInvocation(f"no invocation with id {invocation_id!r}")
    return record


async def result(
    client: Resonate, reader: AsyncServerReader, started: Started, wait: float
) -> tuple[bool, Any]:
    """Wait up to ``wait`` seconds: ``(True, value)``, or ``(False, None)`` if still pending.

    Raises :class:`InvocationFailed` when the invocation settled without a value.
    """
    # Waited for in the caller's own task (no task, no asyncio.wait): the pushed
    # ``unblock`` wakes the caller in one turn of the event loop, not three. The
    # deadline is met as asyncio.timeout_at meets it, by the loop's shared timer
    # (:mod:`asyncrpc.gateway.deadlines`).
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + wait
    deadlines = deadlines_of(loop)
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("result() waits inside a task")
    handle = started.handle
    while True:
        cancelling = task.cancelling()
        deadline = deadlines.at(deadline_at, task)
        try:
            value = await handle.result()
        except BaseException as exc:
            deadline.done()
            if deadline.fired:
                # Past the deadline: its cancellation taken back, the wait is over,
                # unless the task was also cancelled from elsewhere.
                if task.uncancel() <= cancelling and isinstance(exc, asyncio.CancelledError):
                    return False, None
                if isinstance(exc, Exception):
                    return False, None
                raise
            if not isinstance(exc, Exception):
                raise
        else:
            deadline.done()
            if deadline.fired:
                task.uncancel()
            return True, value
        # Read the stored outcome rather than re-raising whatever the SDK rebuilt: its
        # listener can fail for an invocation that resolved all the same.
        invocation = await read(reader, started.id)
        if invocation.state is PromiseState.RESOLVED:
            return True, invocation.value
        if invocation.settled:
            raise InvocationFailed(invocation)
        # Still running: the SDK gave up on it early (its listener refresh can race the
        # promise's creation and take a 404 for "gone"). Listen again.
        try:
            handle = await client.get(started.id)
        except ResonateError as exc:
            raise _unavailable(exc) from None


async def steps(reader: AsyncServerReader, root_id: str) -> list[PromiseRecord]:
    """Every promise of an invocation's call graph, detached steps included, depth first."""
    graph = await reader.call_graph(check_invocation_id(root_id))
    return [node.record for node in graph.walk()]
