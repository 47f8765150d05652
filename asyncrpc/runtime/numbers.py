"""Numbers a person types, read strictly: digits 0-9 only, finite, within stated bounds.

Python's int() and float() take more than anyone means on a command line:
`²` and fullwidth digits, `nan`, `inf`, `1e400`, `1_000`, and thousands of
digits. Each reader here accepts plain decimal digits within bounds and
otherwise raises :class:`NumberError`, whose text says what is valid; callers
add which option it was.
"""

from __future__ import annotations

import re

from asyncrpc.runtime.errors import quoted

#: The most replicas one worker node may have (`--scale b=16`, `b.16`).
MAX_REPLICAS = 16
#: The longest duration any option takes, in seconds (one day).
MAX_SECONDS = 86_400.0

_WHOLE = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9}")


class NumberError(ValueError):
    """The text is not a number in the allowed range; ``str()`` says what is valid."""


def whole_number(text: str, low: int, high: int) -> int:
    """``text`` as an int from ``low`` to ``high``, written with digits 0-9."""
    if _WHOLE.fullmatch(text) and low <= int(text) <= high:
        return int(text)
    raise NumberError(f"{quoted(text)} is not valid: use a whole number from {low} to {high}")


def seconds(text: str, *, positive: bool = False, high: float = MAX_SECONDS) -> float:
    """``text`` as seconds from 0 (above 0 when ``positive``) to ``high``, e.g. 2 or 0.5."""
    if _DECIMAL.fullmatch(text):
        value = float(text)
        if (value > 0 or (value == 0 and not positive)) and value <= high:
            return value
    low = "above 0" if positive else "from 0"
    raise NumberError(
        f"{quoted(text)} is not valid: use a number of seconds {low} up to {high:g}, "
        "written with digits 0-9 (e.g. 2 or 0.5)"
    )
