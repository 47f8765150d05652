"""Numbers a person gives asyncrpc, read strictly wherever they come from.

One reader serves the command line (Typer options, `--scale b=2`, `--delay c=10`),
environment variables (``ASYNCRPC_DELAY``, ``ASYNCRPC_GATEWAY_PORT``...) and query
strings (the gateway's ``wait``), so a value means the same everywhere. Python's
int() and float() take more than anyone means: `²` and fullwidth digits, `nan`,
`inf`, `1e3`, `1_000`, `+5`, spaces, thousands of digits. A :class:`WholeNumber` or
:class:`Seconds` takes plain digits 0-9 within its bounds and raises
:class:`NumberError` for anything else, with one message shape everywhere:
``NAME='TEXT' is not valid: use WHAT IS VALID``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from asyncrpc.runtime.errors import SettingsError, quoted

#: The most replicas one worker node may have (`--scale b=16`, `b.16`).
MAX_REPLICAS = 16
#: The longest duration any option takes, in seconds (one day).
MAX_SECONDS = 86_400.0

_WHOLE = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9}")


class NumberError(SettingsError):
    """A value that is not a number in the allowed range; ``str()`` names it and what is valid.

    ``name`` is the option, variable or query parameter it came from; without it (a Typer
    parser, which names the option itself) the message starts with the value.
    """

    def __init__(self, text: str, valid: str, name: str | None = None) -> None:
        shown = f"{name}={quoted(text)}" if name else quoted(text)
        super().__init__(f"{shown} is not valid: use {valid}")
        self.text = text
        self.valid = valid
        self.name = name


class Reader[T](Protocol):
    """What :func:`from_env` and the option parsers need of a kind of number."""

    @property
    def valid(self) -> str: ...

    def read(self, text: str, name: str | None = None) -> T: ...

    def check(self, value: T, name: str | None = None) -> T: ...


@dataclass(frozen=True)
class WholeNumber:
    """A whole number from ``low`` to ``high``, written with digits 0-9."""

    low: int
    high: int

    @property
    def valid(self) -> str:
        return f"a whole number from {self.low} to {self.high}, written with digits 0-9"

    def read(self, text: str, name: str | None = None) -> int:
        """``text`` as an int; :class:`NumberError` (naming ``name``) unless it is valid."""
        if _WHOLE.fullmatch(text) and self.low <= int(text) <= self.high:
            return int(text)
        raise NumberError(text, self.valid, name)

    def check(self, value: int, name: str | None = None) -> int:
        """``value`` given as a number (an option passed in code), held to the same bounds."""
        if isinstance(value, int) and self.low <= value <= self.high:
            return value
        raise NumberError(str(value), self.valid, name)


@dataclass(frozen=True)
class Seconds:
    """A number of seconds from 0 (above 0 when ``positive``) up to ``high``, e.g. 2 or 0.5."""

    positive: bool = False
    high: float = MAX_SECONDS

    @property
    def valid(self) -> str:
        low = "above 0" if self.positive else "from 0"
        return (
            f"a number of seconds {low} up to {self.high:g}, written with digits 0-9 "
            "(e.g. 2 or 0.5)"
        )

    def read(self, text: str, name: str | None = None) -> float:
        """``text`` as seconds; :class:`NumberError` (naming ``name``) unless it is valid."""
        if _DECIMAL.fullmatch(text) and self._within(float(text)):
            return float(text)
        raise NumberError(text, self.valid, name)

    def check(self, value: float, name: str | None = None) -> float:
        """``value`` given as a number (an option passed in code), held to the same bounds."""
        if isinstance(value, int | float) and self._within(float(value)):
            return float(value)
        raise NumberError(str(value), self.valid, name)

    def _within(self, value: float) -> bool:
        above_low = value > 0 or (value == 0 and not self.positive)
        return math.isfinite(value) and above_low and value <= self.high


#: A TCP port to listen on or connect to.
PORT = WholeNumber(1, 65535)
#: How many replicas of a worker node run, or which one (`b.2`).
REPLICAS = WholeNumber(1, MAX_REPLICAS)
#: A delay or duration that may be 0 (`--delay`, `--respawn`).
SECONDS = Seconds()
#: A lease or timeout, which must be above 0 (`--ttl`, `--timeout`).
POSITIVE_SECONDS = Seconds(positive=True)


def from_env[T](env: Mapping[str, str], variable: str, reader: Reader[T], default: T) -> T:
    """``variable`` in ``env`` read by ``reader``; ``default`` when it is unset or empty."""
    text = env.get(variable)
    return reader.read(text, variable) if text else default


def option_or_env[T](
    option: T | None,
    option_name: str,
    env: Mapping[str, str],
    variable: str,
    reader: Reader[T],
    default: T,
) -> T:
    """The option when given (checked), else the environment variable, else ``default``."""
    if option is not None:
        return reader.check(option, option_name)
    return from_env(env, variable, reader, default)
