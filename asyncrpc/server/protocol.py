"""Request bodies in, response envelopes out, in the shape of Resonate's servers.

A request is ``{"kind", "head": {"corrId", "version"}, "data"}``; the answer
is ``{"kind", "head": {"corrId", "status", "version"}, "data"}``, where
``corrId`` and ``version`` are the request's (as text; ``version`` is "1"
when the request has none) and an error's ``data`` is the status as words
("bad request", "not found", "conflict", "unprocessable entity", "not
implemented"). Why a request failed goes in :attr:`Request`'s detail, which
the HTTP layer sends as a header, because the protocol's ``data`` has no room
for it.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import msgspec

from asyncrpc.runtime.log_lines import CONTROL
from asyncrpc.server import fields
from asyncrpc.server.machine import STATUS_TEXT

#: Largest request body accepted; larger ones get 413.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Deepest nesting of arrays and objects a request may have (the SDKs' requests nest about 6).
MAX_DEPTH = 32
#: Longest id (promise, task, schedule, pid, group, address) a request may name, in characters.
MAX_ID_CHARS = 512
#: The fields that name something: bounded in length and free of control characters, because
#: they are stored, routed on and written to logs (where each kind reads them: see
#: :func:`check_bounds`).
ID_FIELDS = frozenset({"id", "awaited", "awaiter", "pid", "promiseId", "address", "cursor"})
#: A request's ``head.version`` when it has none (resonate.sql's default).
DEFAULT_VERSION = "1"
#: Fields of a ``head`` that carry a credential (the SDKs put the token in ``auth``): never
#: stored (:func:`without_credentials`), compared in lowercase.
CREDENTIAL_FIELDS = frozenset({"auth", "authorization", "token"})
#: Longest text of the ``x-asyncrpc-error`` header, in characters: a request may hold megabytes
#: that a message quotes (an unknown ``kind``), and a header that size is refused by clients.
MAX_DETAIL_CHARS = 1000
#: Of a longer detail, the characters kept from its start (what was wrong); the rest of the
#: bound is kept from its end (what is valid), around an ellipsis.
DETAIL_HEAD_CHARS = 200

#: For each kind, the fields its ``data`` reads (what the docs and the fuzz tests draw from).
FIELDS: dict[str, tuple[str, ...]] = {
    "promise.get": ("id",),
    "promise.create": ("id", "timeoutAt", "param", "tags"),
    "promise.settle": ("id", "state", "value"),
    "promise.register_callback": ("awaited", "awaiter"),
    "promise.register_listener": ("awaited", "address"),
    "promise.search": ("state", "tags", "idPrefix", "limit", "cursor", "order"),
    "task.get": ("id",),
    "task.search": ("state", "limit", "cursor"),
    "task.acquisitions": ("id",),
    "task.create": ("pid", "ttl", "action"),
    "task.acquire": ("id", "version", "pid", "ttl"),
    "task.release": ("id", "version"),
    "task.fulfill": ("id", "version", "action"),
    "task.fence": ("id", "version", "action"),
    "task.suspend": ("id", "version", "actions"),
    "task.heartbeat": ("pid", "tasks"),
    "task.halt": ("id",),
    "task.continue": ("id",),
    "schedule.create": (
        "id",
        "cron",
        "promiseId",
        "promiseTimeout",
        "promiseParam",
        "promiseTags",
    ),
    "schedule.get": ("id",),
    "schedule.delete": ("id",),
    "schedule.search": ("id", "tags", "limit", "cursor"),
}

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class ProtocolError(Exception):
    """A body that is not a request envelope at all (400 or 413)."""

    def __init__(self, status: int, message: str, kind: Any = None, corr_id: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.corr_id = corr_id


class Request(NamedTuple):
    """One request envelope, as read (a named tuple: one is made for every request)."""

    kind: Any
    corr_id: Any
    version: str
    data: dict[str, Any]


def parse_request(body: bytes, bounded: bool = True) -> Request:
    """Decode one request body; raise :class:`ProtocolError` if it is not a JSON object.

    ``bounded`` also refuses deep nesting and overlong or unprintable ids; the log
    replay passes False, so entries a server once accepted replay as they did.
    """
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(
            413, f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    try:
        envelope = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError(400, f"request nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(envelope, dict):
        raise ProtocolError(400, "a request is a JSON object {kind, head, data}")
    head = envelope.get("head")
    head = head if isinstance(head, dict) else {}
    data = envelope.get("data")
    version = fields.text(head, "version")
    kind, corr_id = fields.text(envelope, "kind"), fields.text(head, "corrId")
    if bounded:
        try:
            check_bounds(body, envelope)
        except ProtocolError as exc:
            raise ProtocolError(exc.status, exc.message, kind, corr_id) from None
    return Request(
        kind=kind,
        corr_id=corr_id,
        version=DEFAULT_VERSION if version is None else version,
        data=data if isinstance(data, dict) else {},
    )


def check_name(value: str, what: str) -> None:
    """Raise a 400 :class:`ProtocolError` unless ``value`` is a usable id, group or pid."""
    if len(value) > MAX_ID_CHARS:
        raise ProtocolError(
            400, f"{what} is {len(value)} characters long; the limit is {MAX_ID_CHARS}"
        )
    if CONTROL.search(value):
        raise ProtocolError(
            400, f"{what} {value[:64]!r} holds a control character; names are printable text"
        )


def check_bounds(body: bytes, envelope: dict[str, Any]) -> None:
    """Refuse nesting over :data:`MAX_DEPTH` and ids over their bounds (a 400).

    The depth counts from the envelope's fields (``data`` and ``head`` are the
    first level), whatever ``data`` is. Only the places a kind reads an id
    from are checked (``data``, its ``action`` and the action's ``data``, each
    entry of ``actions`` and ``tasks`` and their ``data``), and the depth is
    walked only when the body has more brackets than the limit: most requests
    cost a few lookups.
    """
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        _check_depth(envelope, 0)
    # JSON writes a C0 control character in a string as an escape, a C1 one as two bytes
    # past ASCII, and DEL as itself: a body with none of these holds no string with one.
    clean = body.isascii() and b"\\" not in body and b"\x7f" not in body
    for record in _records(envelope.get("data")):
        for key in ID_FIELDS.intersection(record):
            value = record[key]
            if isinstance(value, str):
                if not clean or len(value) > MAX_ID_CHARS:
                    check_name(value, f"field {key!r}")
            elif isinstance(value, (dict, list)):
                raise ProtocolError(400, f"field {key!r} must be a string")


def _records(data: Any) -> list[dict[str, Any]]:
    """``data`` and the objects inside it that hold ids."""
    if not isinstance(data, dict):
        return []
    records = [data]
    entries = [data.get("action")]
    for key in ("actions", "tasks"):
        listed = data.get(key)
        if isinstance(listed, list):
            entries.extend(listed)
    for entry in entries:
        if isinstance(entry, dict):
            records.append(entry)
            inner = entry.get("data")
            if isinstance(inner, dict):
                records.append(inner)
    return records


def _check_depth(value: dict[str, Any] | list[Any], depth: int) -> None:
    """Walk ``value`` (an object or array at ``depth``); 400 past :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise ProtocolError(400, f"request nests deeper than {MAX_DEPTH} levels")
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, (dict, list)):
            _check_depth(item, depth + 1)


#: A credential field's name quoted as JSON writes a key, in any case (ASCII only, as the
#: field names are): a body without one is stored as it came, without decoding it.
_CREDENTIAL_KEY = re.compile(
    b"|".join(b'"%s"' % re.escape(name.encode()) for name in sorted(CREDENTIAL_FIELDS)),
    re.IGNORECASE,
)


def without_credentials(body: bytes) -> bytes:
    """``body`` without the credentials its heads carry (``head.auth``), for storing it.

    The SDKs send the token in the head of every request and of each action
    inside one; the log keeps request bodies, and a token on disk is one that
    any backup or copy of the database hands out. Nothing a request does reads
    these fields, so the stored body replays as the one received. A body that
    names no credential field is returned as it is, without decoding it.
    """
    if _CREDENTIAL_KEY.search(body) is None:
        return body
    try:
        envelope = _decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return body  # not a request: it changed nothing and is never stored
    if not _strip_heads(envelope):
        return body
    return _encoder.encode(envelope)


def _strip_heads(envelope: Any) -> bool:
    """Drop credential fields from the envelope's ``head`` and its actions' heads; True if any.

    Only where the protocol has a head (the envelope, ``data.action``, each of
    ``data.actions``): a field named ``head`` anywhere else is data, kept as sent.
    """
    if not isinstance(envelope, dict):
        return False
    heads = [envelope.get("head")]
    data = envelope.get("data")
    if isinstance(data, dict):
        actions = data.get("actions")
        for action in [data.get("action"), *(actions if isinstance(actions, list) else [])]:
            if isinstance(action, dict):
                heads.append(action.get("head"))
    stripped = False
    for head in heads:
        if isinstance(head, dict):
            for name in [name for name in head if name.lower() in CREDENTIAL_FIELDS]:
                del head[name]
                stripped = True
    return stripped


def detail_header(detail: str) -> bytes:
    """``detail`` as the value of the ``x-asyncrpc-error`` header: one line of ASCII, bounded.

    A detail longer than :data:`MAX_DETAIL_CHARS` keeps its start and its end
    around an ellipsis: the messages say what was wrong first and what is valid last.
    """
    text = detail.encode("ascii", "backslashreplace").replace(b"\r", b" ").replace(b"\n", b" ")
    if len(text) > MAX_DETAIL_CHARS:
        tail = MAX_DETAIL_CHARS - DETAIL_HEAD_CHARS - 3
        text = text[:DETAIL_HEAD_CHARS] + b"..." + text[-tail:]
    return text


#: Characters that JSON leaves raw but that line readers split on: NEL, LINE and PARAGRAPH
#: SEPARATOR, as UTF-8, with their JSON escapes. (JSON escapes the C0 ones itself.)
_LINE_BREAKS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def stream_safe(message: bytes) -> bytes:
    """A JSON message ready for an SSE ``data:`` line: no byte sequence a reader splits on.

    An SSE client reads the stream line by line, and some split lines as
    :meth:`str.splitlines` does (the Python SDK does): a raw U+2028 in an id
    or a value would cut the message in two, and the process it is for could
    never parse it. JSON allows these characters escaped, and in UTF-8 their
    bytes occur nowhere else, so replacing the bytes is exact.
    """
    if message.isascii():
        return message
    for raw, escaped in _LINE_BREAKS:
        if raw in message:
            message = message.replace(raw, escaped)
    return message


def response(kind: Any, corr_id: Any, version: str, status: int, data: Any) -> bytes:
    head = {"status": status, "version": version}
    if corr_id is not None:
        head["corrId"] = corr_id
    return _encoder.encode({"kind": kind, "head": head, "data": data})


def error_envelope(status: int, kind: Any = None, corr_id: Any = None) -> bytes:
    """An error answer: ``data`` is the status in words."""
    return response(kind, corr_id, DEFAULT_VERSION, status, STATUS_TEXT.get(status, "error"))
