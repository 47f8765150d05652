"""Start, re-attach to and read an invocation of a flow: the Ephemeral to Durable step.

A request arriving at the gateway is *ephemeral*: if it is lost, nothing
remembers it. :func:`start` turns it into a *durable* invocation: a promise on
the server, under an id the caller chooses, whose task the server sends to
the flow's entry group. Asking again with the same id re-attaches to that
same promise (the functions do not run again), which is what lets a caller
that crashed or gave up come back for the result.

A start sends what the SDK's ``rpc`` sends (:mod:`asyncrpc.gateway.sdk_rpc`: a
create, then a listen registering the caller, built with the SDK's own builders),
so the promise carries exactly the tags the SDK gives a top-level call. Whether
it created the invocation or found it is read from the create's own answer, the
same on every Resonate server: the create carries a fresh ``asyncrpc:request``
tag, and the server answers with the promise it holds, whose tags are this
request's only if this request created it. The same answer names the promise's
function, for the conflict check. Where the channel pipelines (HTTP), the listen
goes out with the create, in one write.

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

from resonate.error import ConnectorError, DecodingError, ResonateError, ServerError
from resonate.handle import ResonateHandle
from resonate.resonate import Resonate

from asyncrpc.gateway import sdk_rpc
from asyncrpc.gateway.deadlines import of_loop as deadlines_of
from asyncrpc.lesson.topology import Flow
from asyncrpc.network.start_channel import StartChannel
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
    channel: StartChannel,
    flow: Flow,
    invocation_id: str | None = None,
    *,
    request_id: Callable[[], str] = new_request_id,
    patience: float = 0.0,
    caller: Resonate | None = None,
) -> Started:
    """Start ``flow`` under ``invocation_id`` (default: the flow's fixed id), or re-attach.

    ``channel`` must be the network ``client`` sends through. The create is
    sent again while the server does not answer, for up to ``patience``
    seconds; then :class:`NotStarted`. Raises :class:`InvocationConflict`
    when the id belongs to another function. ``caller`` is ``client``'s handle for the
    flow's entry group (:func:`group_caller`), made here when not given.
    """
    invocation_id = check_invocation_id(flow.default_id if invocation_id is None else invocation_id)
    request = request_id()
    if caller is None:
        caller = group_caller(client, flow.entry_group)
    listen_to = sdk_rpc.listen_address(caller) if channel.pipelines else None
    requests = sdk_rpc.start_requests(
        caller,
        flow.entry_function,
        flow.entry_args,
        invocation_id,
        {REQUEST_TAG: request},
        listen_to,
    )
    subscription, new = sdk_rpc.subscribe(caller, invocation_id)
    try:
        answers = await channel.send_start(requests.requests, requests.headers, patience)
        created = sdk_rpc.read_create(answers[0])  # the flow is durable now
    except ResonateError as exc:
        if new:  # a subscription another start of this id made stays that start's
            sdk_rpc.forget(caller, invocation_id, subscription)
        if isinstance(exc, ConnectorError):
            reason = str(exc.error) or type(exc.error).__name__
            raise NotStarted(invocation_id, reason) from None
        if isinstance(exc, DecodingError):
            raise ServerRefused(
                f"the Resonate server's answer to creating {invocation_id!r} held no promise"
            ) from None
        raise _unavailable(exc) from None
    if len(answers) > 1:
        sdk_rpc.settle_from_listen(caller, invocation_id, subscription, answers[1])
    elif new:
        await sdk_rpc.listen(caller, invocation_id, subscription)
    handle = sdk_rpc.handle(caller, invocation_id, subscription)
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
