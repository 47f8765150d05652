"""Reading request fields the way resonate.sql reads them, or a 400 that says what was wrong.

resonate.sql takes a field as text (``data->>'id'``) and casts it where it
needs a number, so a missing field reads as null and a field that does not
cast is a bad request. These helpers give the same answers, with a message
naming the field, so every kind reads its input in one way: a value that is
not a string reads as Postgres writes JSON as text (:func:`json_text`), and a
number is read as Postgres casts text to an integer (:func:`parse_int`).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

#: Postgres's integer input (``int4in``, ``int8in``): optional ASCII blanks around an optional
#: sign and ASCII digits, with single underscores between digits, or a ``0x``/``0o``/``0b``
#: number (whose first digit may follow an underscore).
INT_PATTERN = re.compile(
    r"[ \t\n\v\f\r]*([+-]?)"
    r"(?:([0-9]+(?:_[0-9]+)*)"
    r"|0[xX]((?:_?[0-9a-fA-F])+)"
    r"|0[oO]((?:_?[0-7])+)"
    r"|0[bB]((?:_?[01])+))"
    r"[ \t\n\v\f\r]*"
)
#: The base of each of INT_PATTERN's number groups.
INT_BASES = (10, 16, 8, 2)
#: More significant digits than any 64-bit integer has in base 2.
MAX_INT_DIGITS = 64
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class BadRequest(Exception):
    """A request the protocol answers with 400; the message says which field and why."""


def text(data: Any, key: str) -> str | None:
    """``data->>key``: a string as is, other JSON as its JSON text, absent or null as None."""
    value = data.get(key) if isinstance(data, dict) else None
    if value is None or isinstance(value, str):
        return value
    return json_text(value)


def json_text(value: Any) -> str:
    """``value`` as Postgres writes a ``jsonb`` value as text.

    An object's keys in jsonb's order (shorter first, then by their UTF-8
    bytes), ``", "`` between items and ``": "`` after a key, strings escaped as
    Postgres escapes them. A number with a fraction or an exponent is written
    from its value in plain decimals (``1e+20`` as ``100000000000000000000``):
    Postgres keeps the digits it was sent (``1.50``), which a decoded float no
    longer has.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, str):
        return _string_text(value)
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        items = ", ".join(f"{_string_text(k)}: {json_text(value[k])}" for k in keys)
        return "{" + items + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json_text(item) for item in value) + "]"
    return _string_text(str(value))


def _number_text(value: float) -> str:
    if not math.isfinite(value):
        return "Infinity" if value > 0 else "-Infinity"
    written = format(Decimal(repr(value)), "f")
    return written.lstrip("-") if value == 0 else written


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_TO_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _string_text(value: str) -> str:
    """A JSON string as Postgres writes it: quotes, backslashes and C0 controls escaped."""
    return '"' + _TO_ESCAPE.sub(_escape, value) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def parse_int(raw: str, bits: int = 64) -> int | None:
    """``raw::bigint`` (``::int`` with ``bits=32``) as Postgres reads it; None when it does not.

    Postgres takes what :data:`INT_PATTERN` describes and refuses anything
    else, Unicode digits (``²``, full-width digits) included; a value out of range is an
    error there too.
    """
    match = INT_PATTERN.fullmatch(raw)
    if match is None:
        return None
    sign, *groups = match.groups()
    base, digits = next((b, g) for b, g in zip(INT_BASES, groups, strict=True) if g is not None)
    digits = digits.replace("_", "").lstrip("0") or "0"
    if len(digits) > MAX_INT_DIGITS:  # out of range whatever the base, and cheap to refuse
        return None
    number = int(digits, base)
    number = -number if sign == "-" else number
    limit = BIGINT_MAX if bits == 64 else INT_MAX
    return number if -limit - 1 <= number <= limit else None


def integer(data: Any, key: str, bits: int = 64) -> int | None:
    """``(data->>'key')::bigint`` (or ``::int`` with ``bits=32``): None when absent.

    A JSON integer (what every SDK sends) is range-checked as it is: its text would
    parse back to the same number, so the text and the pattern are for strings only.
    """
    value = data.get(key) if isinstance(data, dict) else None
    if type(value) is int:
        limit = BIGINT_MAX if bits == 64 else INT_MAX
        if -limit - 1 <= value <= limit:
            return value
    raw = text(data, key)
    if raw is None:
        return None
    number = parse_int(raw, bits)
    if number is None:
        raise BadRequest(f"field {key!r} must be an integer that fits {bits} bits, got {raw!r}")
    return number


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
