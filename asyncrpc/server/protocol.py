"""Turning request bodies into requests the state machine may see, or clear 4xx errors.

The state machine is deliberately lenient (a wrongly typed field quietly falls
back to a default). A server facing the network should instead tell a client
exactly what was wrong, so every envelope is checked here first: valid JSON,
an object with a known ``kind``, a ``data`` object, and the documented type
for each field the kind uses. Nothing that fails here reaches the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from resonate.connections.local import unwrap_request_envelope
from resonate_base import PROTOCOL_VERSION

#: Largest request body accepted; larger ones get 413.
MAX_BODY_BYTES = 4 * 1024 * 1024

STR, INT, OBJ, LIST, STR_MAP = "string", "integer", "object", "array", "object of strings"
ANY = "any"

#: For each kind, the fields it reads and their JSON types. ``True`` marks required.
FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "promise.get": {"id": (STR, True)},
    "promise.create": {
        "id": (STR, True),
        "timeoutAt": (INT, False),
        "param": (ANY, False),
        "tags": (STR_MAP, False),
    },
    "promise.settle": {"id": (STR, True), "state": (STR, True), "value": (ANY, False)},
    "promise.register_listener": {"awaited": (STR, True), "address": (STR, True)},
    "promise.search": {
        "state": (STR, False),
        "tags": (STR_MAP, False),
        "idPrefix": (STR, False),
        "limit": (INT, False),
        "cursor": (STR, False),
    },
    "task.get": {"id": (STR, True)},
    "task.search": {"state": (STR, False), "limit": (INT, False), "cursor": (STR, False)},
    "task.create": {"pid": (STR, True), "ttl": (INT, False), "action": (OBJ, True)},
    "task.acquire": {
        "id": (STR, True),
        "version": (INT, False),
        "pid": (STR, True),
        "ttl": (INT, False),
    },
    "task.release": {"id": (STR, True), "version": (INT, False)},
    "task.fulfill": {"id": (STR, True), "version": (INT, False), "action": (OBJ, True)},
    "task.fence": {"id": (STR, True), "version": (INT, False), "action": (OBJ, True)},
    "task.suspend": {"id": (STR, True), "version": (INT, False), "actions": (LIST, False)},
    "task.heartbeat": {"pid": (STR, True), "tasks": (LIST, False)},
    "schedule.create": {
        "id": (STR, True),
        "cron": (STR, True),
        "promiseId": (STR, True),
        "promiseTimeout": (INT, False),
        "promiseParam": (ANY, False),
        "promiseTags": (STR_MAP, False),
    },
    "schedule.get": {"id": (STR, True)},
    "schedule.delete": {"id": (STR, True)},
    "schedule.search": {"tags": (STR_MAP, False), "limit": (INT, False), "cursor": (STR, False)},
}

PROMISE_SETTLE_STATES = ("resolved", "rejected", "rejected_canceled")


class ProtocolError(Exception):
    """A request the server refuses before it reaches the state machine."""

    def __init__(self, status: int, message: str, kind: str = "", corr_id: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.corr_id = corr_id


@dataclass(frozen=True)
class Request:
    """A checked request: its kind and the flat form ``ServerState.apply`` takes."""

    kind: str
    corr_id: Any
    flat: dict[str, Any]


def parse_request(body: bytes) -> Request:
    """Decode and check one request body; raise :class:`ProtocolError` if it is not valid."""
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(
            413, f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    try:
        envelope = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise ProtocolError(400, "request must be a JSON object {kind, head, data}")
    kind = envelope.get("kind")
    head = envelope.get("head", {})
    corr_id = head.get("corrId") if isinstance(head, dict) else None
    if not isinstance(kind, str) or kind not in FIELDS:
        raise ProtocolError(
            400, f"unknown request kind {kind!r}; valid kinds: {', '.join(sorted(FIELDS))}"
        )
    if not isinstance(head, dict):
        raise ProtocolError(400, "'head' must be an object", kind, corr_id)
    data = envelope.get("data", {})
    if not isinstance(data, dict):
        raise ProtocolError(400, "'data' must be an object", kind, corr_id)
    _check_fields(kind, data, corr_id)
    flat = unwrap_request_envelope({"kind": kind, "head": head, "data": data})
    return Request(kind=kind, corr_id=corr_id, flat=flat)


def _check_fields(kind: str, data: dict[str, Any], corr_id: Any) -> None:
    for field, (expected, required) in FIELDS[kind].items():
        value = data.get(field)
        if value is None:
            if required:
                raise ProtocolError(400, f"{kind}: missing required field {field!r}", kind, corr_id)
            continue
        if not _has_type(value, expected):
            raise ProtocolError(
                400,
                f"{kind}: field {field!r} must be {_article(expected)}, got {type(value).__name__}",
                kind,
                corr_id,
            )
        if expected == STR and required and value == "":
            raise ProtocolError(400, f"{kind}: field {field!r} must not be empty", kind, corr_id)
    if kind == "promise.settle" and data["state"] not in PROMISE_SETTLE_STATES:
        raise ProtocolError(
            400,
            f"promise.settle: state must be one of {', '.join(PROMISE_SETTLE_STATES)}",
            kind,
            corr_id,
        )


def _has_type(value: Any, expected: str) -> bool:
    if expected == ANY:
        return True
    if expected == STR:
        return isinstance(value, str)
    if expected == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == OBJ:
        return isinstance(value, dict)
    if expected == LIST:
        return isinstance(value, list)
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _article(expected: str) -> str:
    return f"an {expected}" if expected[0] in "aeiou" else f"a {expected}"


def error_envelope(status: int, message: str, kind: str = "", corr_id: Any = None) -> bytes:
    """A response envelope carrying an error, in the real server's shape."""
    return msgspec.json.encode(
        {
            "kind": kind,
            "head": {"corrId": corr_id, "status": status, "version": PROTOCOL_VERSION},
            "data": message,
        }
    )
