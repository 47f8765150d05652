"""A worker node's log lines: the lines every process writes, at a node's rate.

A node logs a line or two for every step it runs (the lesson's lines in
:mod:`asyncrpc.lesson.services`), so at a few hundred steps a second the
standard path, a :class:`logging.StreamHandler` with
:class:`~asyncrpc.runtime.log_lines.EscapingFormatter`, is a share of the
node's CPU that its lines do not need: the record looks up its caller's file
and line, its thread, process and task names, the formatter formats the
clock with ``strftime`` and runs a regular expression over every message,
and nothing a node prints uses any of that but the time and the message.

:func:`configure` keeps what the process writes, byte for byte
(:func:`~asyncrpc.runtime.process.configure_logging`'s format, escapes
included; a format other than :data:`LINE_FORMAT` keeps the standard
handler), and takes the shorter path: :class:`LineHandler` formats the time
once a second, escapes a message only when it holds a character to escape
(``str.isprintable`` says so without a regular expression), and leaves a
record with a traceback to the formatter; and the records leave out the
fields no line shows (the ``logging`` module's documented switches:
``logging._srcfile``, ``logThreads``, ``logProcesses``,
``logMultiprocessing``, ``logAsyncioTasks``). A line below the level costs
only the level check, as anywhere.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

from asyncrpc.runtime.log_lines import escape_controls
from asyncrpc.runtime.process import configure_logging

#: The one format :class:`LineHandler` writes: the time to the millisecond, then the message.
LINE_FORMAT = "%(asctime)s.%(msecs)03d %(message)s"


class LineHandler(logging.StreamHandler[TextIO]):
    """Writes the lines ``formatter`` (of :data:`LINE_FORMAT`) would, for less CPU."""

    def __init__(self, stream: TextIO, formatter: logging.Formatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self._datefmt = formatter.datefmt or ""
        self._convert = formatter.converter
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)  # a traceback: the formatter's own layout
        message = record.getMessage()
        if not message.isprintable():
            message = escape_controls(message)
        created = record.created
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self._datefmt, self._convert(created))
        return f"{self._stamp}.{int(record.msecs):03d} {message}"


def configure() -> None:
    """Log as every process does (:func:`configure_logging`), through :class:`LineHandler`."""
    configure_logging()
    logging._srcfile = None  # no caller's file and line: no line shows them
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12; typeshed lags
    root = logging.getLogger()
    root.handlers[:] = [faster(handler) for handler in root.handlers]


def faster(handler: logging.Handler) -> logging.Handler:
    """``handler`` as a :class:`LineHandler` when it writes :data:`LINE_FORMAT` to a stream."""
    formatter = handler.formatter
    if (
        type(handler) is logging.StreamHandler
        and formatter is not None
        and formatter._fmt == LINE_FORMAT
        and formatter.datefmt is not None
    ):
        return LineHandler(handler.stream, formatter)
    return handler
