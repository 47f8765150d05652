"""The flow routes' query (``id``, ``wait``): read and checked by hand, described for OpenAPI.

A flow route is the gateway's hot path, and FastAPI's declared query
parameters cost it a pydantic validation per request (docs/architecture.md
has the measurement). Two optional parameters are few enough to read from
the query string directly (``wait`` with the reader of every number,
:mod:`asyncrpc.runtime.numbers`); :data:`PARAMETERS` gives ``/docs`` the same
description FastAPI would have generated, with the bounds spelled out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from asyncrpc.gateway import invocations
from asyncrpc.runtime import numbers

#: The longest ``wait`` a request may ask for.
MAX_WAIT = 3600.0
#: What ``wait`` accepts: no nan, inf, 1e9, 1_0 or other scripts' digits.
WAIT = numbers.Seconds(high=MAX_WAIT)

ID_DESCRIPTION = (
    f"Invocation id: start, or re-attach to, this invocation ({invocations.VALID_ID_HINT}). "
    "Default: the flow's fixed id."
)
WAIT_DESCRIPTION = (
    f"Seconds to wait for the result before answering 202 (default {invocations.DEFAULT_WAIT:g})."
)


class InvalidQuery(ValueError):
    """A query parameter a flow route cannot use; the text says what is valid."""


def arguments(query_string: bytes) -> dict[str, str]:
    """A request's query as ``{name: value}``, the last of a repeated name winning.

    What starlette's ``QueryParams`` gives a route (``parse_qsl`` of the latin-1 text,
    blank values kept, ``get`` answering the last value), without its multi-dict. A
    query of one parameter with nothing to decode (``id=order-42``, what most requests
    send) is split here: ``parse_qsl`` gives the same for it, at several times the cost.
    """
    if not query_string:
        return {}
    text = query_string.decode("latin-1")
    if "&" not in text and "%" not in text and "+" not in text:
        name, _, value = text.partition("=")
        return {name: value}
    return dict(parse_qsl(text, keep_blank_values=True))


def invocation_id(query: Mapping[str, str]) -> str | None:
    """The ``id`` asked for, unchecked (starting the invocation checks it), or None."""
    return query.get("id")


def wait(query: Mapping[str, str]) -> float | None:
    """The ``wait`` asked for, or None; :class:`InvalidQuery` unless it is 0 to MAX_WAIT."""
    sent = query.get("wait")
    if sent is None:
        return None
    try:
        return WAIT.read(sent, "wait")
    except numbers.NumberError as error:
        raise InvalidQuery(str(error)) from None


def _parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


#: The OpenAPI description of a flow route's query, for routes that wait and routes that do not.
ID_PARAMETER = _parameter(
    "id",
    ID_DESCRIPTION,
    {"type": "string", "pattern": f"^{invocations.INVOCATION_ID.pattern}$", "maxLength": 128},
)
WAIT_PARAMETER = _parameter(
    "wait", WAIT_DESCRIPTION, {"type": "number", "minimum": 0, "maximum": MAX_WAIT}
)


def parameters(waits_for_result: bool) -> dict[str, list[dict[str, Any]]]:
    """``openapi_extra`` for a flow route: its query parameters."""
    return {"parameters": [ID_PARAMETER, *([WAIT_PARAMETER] if waits_for_result else [])]}
