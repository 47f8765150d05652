"""One log line per record, whatever text a peer put into it.

Servers log ids, groups and pids that come from requests. A newline in one
would start a forged line (``x\\nERROR forged``) and an ESC would drive the
reader's terminal, so every process logs through :class:`EscapingFormatter`,
which writes control characters of the message as ``\\xNN`` escapes, and the
other characters a line reader may split on (U+2028 LINE SEPARATOR, U+2029
PARAGRAPH SEPARATOR: :meth:`str.splitlines` splits on them) as ``\\uNNNN``. A
traceback appended to a record keeps its own newlines: it is our text.

A log file also holds what a replica printed itself, so its readers split it
with :func:`log_lines` (at newlines only), never with :meth:`str.splitlines`.
"""

from __future__ import annotations

import logging
import re
from typing import TextIO

#: C0 and C1 control characters, DEL included (newline, carriage return, ESC ...).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: What :func:`escape_controls` escapes: the control characters, and the two line and
#: paragraph separators, which are not control characters but end a line for
#: :meth:`str.splitlines` (as do the C0 and C1 ones it splits on: \x0b, \x0c, \x1c-\x1e, \x85).
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with each control character or line separator written as a visible escape."""
    return UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


#: What :meth:`str.splitlines` splits on besides a newline.
LINE_BREAKS = re.compile(r"[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def log_lines(text: str) -> list[str]:
    """The lines of a log file's ``text``: split at newlines only.

    A trailing carriage return is dropped (``\\r\\n`` endings); whatever else
    would end a line for another reader (U+2028, a form feed, NEL ...) is
    escaped as :func:`escape_controls` escapes it, so one line of the file is
    one line on the reader's screen, whoever wrote it.
    """
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [one_line(line) for line in lines]


def one_line(line: str) -> str:
    """One line of a log file (without its newline) as :func:`log_lines` gives it."""
    return LINE_BREAKS.sub(_escape, line.removesuffix("\r"))


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
