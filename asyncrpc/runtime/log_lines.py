"""One log line per record, whatever text a peer put into it.

Servers log ids, groups and pids that come from requests. A newline in one
would start a forged line (``x\\nERROR forged``) and an ESC would drive the
reader's terminal, so every process logs through :class:`EscapingFormatter`,
which writes control characters of the message as ``\\xNN`` escapes. A
traceback appended to a record keeps its own newlines: it is our text.
"""

from __future__ import annotations

import logging
import re
from typing import TextIO

#: C0 and C1 control characters, DEL included (newline, carriage return, ESC ...).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with each control character written as a visible escape."""
    return CONTROL.sub(lambda match: _ESCAPES.get(match[0], f"\\x{ord(match[0]):02x}"), text)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class EscapingFormatter(logging.Formatter):
    """A formatter whose message part never spans lines nor holds terminal escapes."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def configure(level: int | str, stream: TextIO, fmt: str, datefmt: str | None = None) -> None:
    """Route the root logger to ``stream`` through :class:`EscapingFormatter`."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter(fmt, datefmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
