"""The SDK's ``rpc`` taken apart, so that a start sends its two requests itself.

resonate-sdk 0.8.1's ``rpc`` creates a promise and then registers the caller
as a listener, each request a round trip of its own from a task of its own,
and keeps the create's answer to itself. A start needs that answer (whether
this request created the invocation or found it, and which function the
promise names), and gains from sending the two requests in one write
(:class:`~asyncrpc.network.start_channel.StartChannel`). So the gateway builds
the very requests ``rpc`` builds, with the SDK's own builders (the same param,
timeout, tags and envelope head), adds its request tag to the create, and
sends them itself. The handle it returns waits on the SDK's own subscription,
registered before the create leaves and settled as ``rpc`` settles it, so the
pushed ``unblock`` and the SDK's periodic refresh find it.

Everything here that reads the SDK's private members (the version is pinned) is
in this one module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from resonate.error import DecodingError, ServerError
from resonate.handle import ResonateHandle, Subscription
from resonate.ids import origin_of
from resonate.resonate import Resonate
from resonate.send import Envelope, Head
from resonate.types import Args, PromiseState, Value
from resonate_base import ORIGIN_HEADER

from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState as WireState

log = logging.getLogger(__name__)

CREATE_KIND = "promise.create"
LISTEN_KIND = "promise.register_listener"
#: The listen's corrId: the create's, with this after it.
LISTEN_SUFFIX = ".listen"
#: The states a promise may be in, as the wire names them.
_STATES = frozenset(str(state) for state in WireState)
_ERROR_STATUS = 400
_NOT_FOUND = 404


class _Head(msgspec.Struct):
    status: int


class _Answer(msgspec.Struct):
    """What a start reads of an answer: its kind, its status and its data."""

    kind: str
    head: _Head
    data: Any = None


class _Outcome(msgspec.Struct):
    """What settling a subscription reads of a promise (the SDK's own record, cut to that)."""

    state: PromiseState
    value: Value | None = None


_answer_decoder = msgspec.json.Decoder(_Answer)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StartRequests:
    """A start's requests, encoded: the create, and the listen when it goes with it."""

    requests: list[str]
    #: The routing origin (``resonate:origin``), as the SDK's sender passes it.
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class CreatedPromise:
    """The promise a create's answer carries, decoded only as far as it is read.

    Its ``tags`` tell a start whether its own request made it; the whole
    :class:`~asyncrpc.protocol.records.PromiseRecord` (its param decoded, for the
    function it names) only for a promise the request did not make.
    """

    wire: dict[str, Any]

    @property
    def tags(self) -> Mapping[str, str]:
        tags = self.wire.get("tags")
        return tags if isinstance(tags, dict) else {}

    def record(self) -> PromiseRecord:
        return PromiseRecord.from_wire(self.wire)


def listen_address(caller: Resonate) -> str | None:
    """Where the server pushes this client's ``unblock``: its message source's own address."""
    source = caller._source
    return None if source is None else source.unicast()


def start_requests(
    caller: Resonate,
    function: str,
    args: tuple[Any, ...],
    invocation_id: str,
    tags: Mapping[str, str],
    listen_to: str | None,
) -> StartRequests:
    """The create ``caller.rpc(invocation_id, function, *args)`` sends, with ``tags`` added;
    and after it, with ``listen_to``, the listen ``rpc`` sends next, to that address."""
    opts = caller.opts
    req = caller._build_root_promise_create_req(
        invocation_id, function, Args(args=args), opts.version, opts.timeout, opts.target
    )
    req = caller._encode_create_req(req)
    req = msgspec.structs.replace(req, tags={**req.tags, **tags})
    head = caller._sender._make_head()
    requests = [_encoder.encode(Envelope(kind=CREATE_KIND, head=head, data=req)).decode()]
    if listen_to is not None:
        corr_id = head.corr_id + LISTEN_SUFFIX
        listen_head = Head(corr_id=corr_id, version=head.version, auth=head.auth)
        data = {"awaited": invocation_id, "address": listen_to}
        listen = Envelope(kind=LISTEN_KIND, head=listen_head, data=data)
        requests.append(_encoder.encode(listen).decode())
    return StartRequests(requests, {ORIGIN_HEADER: origin_of(invocation_id)})


def _read(raw: str, kind: str) -> _Answer:
    try:
        answer = _answer_decoder.decode(raw)
    except msgspec.MsgspecError as exc:
        raise DecodingError(f"invalid answer to {kind}: {exc}") from None
    if answer.kind != kind:
        raise ServerError(500, f"an answer of kind {answer.kind!r} to {kind}")
    return answer


def _error_text(answer: _Answer) -> str:
    data = answer.data
    if isinstance(data, str):
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return error
    return f"server error (status {answer.head.status})"


def read_create(raw: str) -> CreatedPromise:
    """The promise a create's answer carries; :class:`ServerError` for a refusal, and
    :class:`DecodingError` for an answer that holds no promise."""
    answer = _read(raw, CREATE_KIND)
    if answer.head.status >= _ERROR_STATUS:
        raise ServerError(answer.head.status, _error_text(answer))
    data = answer.data
    promise = data.get("promise") if isinstance(data, dict) else None
    if (
        not isinstance(promise, dict)
        or not isinstance(promise.get("id"), str)
        or str(promise.get("state")) not in _STATES
    ):
        raise DecodingError(f"the answer to {CREATE_KIND} held no promise")
    return CreatedPromise(promise)


def subscribe(caller: Resonate, invocation_id: str) -> tuple[Subscription, bool]:
    """The SDK's subscription to the promise, and whether it is new (as ``rpc`` makes it,
    before its create leaves: an early ``unblock`` finds it)."""
    return caller._subscribe(invocation_id)


def forget(caller: Resonate, invocation_id: str, subscription: Subscription) -> None:
    """Drop the subscription of a start that failed, if it is still this start's.

    Kept, it would make the next start of the id (the caller sending it again) find
    it, register no listener, and wait for the periodic refresh.
    """
    subs = caller._runtime.subs
    if subs.get(invocation_id) is subscription and not subscription.settled():
        del subs[invocation_id]


def settle_from_listen(
    caller: Resonate, invocation_id: str, subscription: Subscription, raw: str
) -> None:
    """Take the listen's answer as the SDK takes its own: a promise already settled settles
    the subscription, a promise that is gone settles it as gone, and any other failure
    is logged (the SDK's periodic refresh registers the listener again)."""
    try:
        answer = _read(raw, LISTEN_KIND)
    except (DecodingError, ServerError) as exc:
        log.warning("listener registration failed id=%s: %s", invocation_id, exc)
        return
    status = answer.head.status
    if status == _NOT_FOUND:
        caller._settle_subscription_gone(invocation_id, subscription, _error_text(answer))
        return
    if status >= _ERROR_STATUS:
        log.warning("listener registration failed id=%s: %s", invocation_id, _error_text(answer))
        return
    data = answer.data
    promise = data.get("promise") if isinstance(data, dict) else None
    if isinstance(promise, dict) and promise.get("state") == "pending":
        return
    try:
        outcome = msgspec.convert(promise, _Outcome)
    except msgspec.ValidationError as exc:
        log.warning("listener registration failed id=%s: %s", invocation_id, exc)
        return
    value = Value() if outcome.value is None else outcome.value
    caller._settle_and_cleanup(invocation_id, subscription, outcome.state, value)


async def listen(caller: Resonate, invocation_id: str, subscription: Subscription) -> None:
    """Register the listener as ``rpc`` does after its create: the SDK's own request."""
    await caller._register_and_settle(invocation_id, subscription)


def handle(caller: Resonate, invocation_id: str, subscription: Subscription) -> ResonateHandle[Any]:
    """The handle ``rpc`` returns, for a promise whose create the server has answered."""
    created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    created.set_result(None)
    return ResonateHandle(invocation_id, subscription, caller._codec, Any, created)
