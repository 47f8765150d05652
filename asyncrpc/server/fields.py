"""Reading request fields the way resonate.sql reads them, or a 400 that says what was wrong.

resonate.sql takes a field as text (``data->>'id'``) and casts it where it
needs a number, so a missing field reads as null and a field that does not
cast is a bad request. These helpers give the same answers, with a message
naming the field, so every kind reads its input in one way.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

INT_PATTERN = re.compile(r"\s*[+-]?\d+\s*")
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class BadRequest(Exception):
    """A request the protocol answers with 400; the message says which field and why."""


def text(data: Any, key: str) -> str | None:
    """``data->>key``: a string as is, other JSON as its JSON text, absent or null as None."""
    value = data.get(key) if isinstance(data, dict) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return msgspec.json.encode(value).decode()


def integer(data: Any, key: str, bits: int = 64) -> int | None:
    """``(data->>'key')::bigint`` (or ``::int`` with ``bits=32``): None when absent."""
    raw = text(data, key)
    if raw is None:
        return None
    limit = BIGINT_MAX if bits == 64 else INT_MAX
    if INT_PATTERN.fullmatch(raw) is None or not -limit - 1 <= int(raw) <= limit:
        raise BadRequest(f"field {key!r} must be an integer that fits {bits} bits, got {raw!r}")
    return int(raw)


def obj(data: Any, key: str) -> Any:
    """``data->'key'``: the raw JSON value (None when absent)."""
    return data.get(key) if isinstance(data, dict) else None


def tags(data: Any, key: str) -> dict[str, Any]:
    """A tags object (absent or null is empty); anything else is a bad request."""
    value = obj(data, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"field {key!r} must be an object of tags, got {type(value).__name__}")
    return value


def array(data: Any, key: str) -> list[Any]:
    """A JSON array (absent or null is empty); anything else is a bad request."""
    value = obj(data, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"field {key!r} must be an array, got {type(value).__name__}")
    return value
