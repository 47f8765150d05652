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
(``str.isprintable`` says so without a regular expression), leaves a
record with a traceback to the formatter, and writes a line under the
handler's lock once (``StreamHandler`` takes it again to flush) without
running filters it does not have; and the records leave out the
fields no line shows (the ``logging`` module's documented switches:
``logging._srcfile``, ``logThreads``, ``logProcesses``,
``logMultiprocessing``, ``logAsyncioTasks``) and are made by
:class:`LineRecord` (the documented ``logging.setLogRecordFactory`` hook),
which fills the same fields with less work. A line below the level costs
only the level check, as anywhere.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

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

    def handle(self, record: logging.LogRecord) -> bool:
        """Emit ``record`` under the handler's lock; through the filters only if it has any."""
        if self.filters:
            return super().handle(record)
        with self.lock:  # type: ignore[union-attr]  # a Handler's lock is made in __init__
            self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Write the line and flush it: ``StreamHandler.emit`` without its second lock."""
        try:
            stream = self.stream
            stream.write(self.format(record) + self.terminator)
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

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


#: What a record's ``pathname`` is when no caller is looked up (``logging._srcfile`` is None).
UNKNOWN_FILE = "(unknown file)"

type ExcInfo = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)


class LineRecord(logging.LogRecord):
    """A :class:`logging.LogRecord` with every field it has, made with less work.

    ``LogRecord.__init__`` splits the caller's path into a file and a module name
    for every record and looks at the thread, process and task switches; with the
    switches :func:`configure` turns off, the path is always :data:`UNKNOWN_FILE`
    and those fields are None, so this one fills them without the calls. With any
    switch on (a process that turns one back), it is ``LogRecord`` itself.
    """

    def __init__(
        self,
        name: str,
        level: int,
        pathname: str,
        lineno: int,
        msg: object,
        args: Any,
        exc_info: ExcInfo | None,
        func: str | None = None,
        sinfo: str | None = None,
        **kwargs: object,
    ) -> None:
        if (
            pathname != UNKNOWN_FILE
            or logging.logThreads
            or logging.logProcesses
            or logging.logMultiprocessing
            or logging.logAsyncioTasks  # type: ignore[attr-defined]  # Python 3.12; typeshed lags
        ):
            super().__init__(name, level, pathname, lineno, msg, args, exc_info, func, sinfo)
            return
        created = time.time()
        self.name = name
        self.msg = msg
        if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            args = args[0]  # ``log.info("%(key)s", {"key": value})``, as LogRecord reads it
        self.args = args
        self.levelname = logging.getLevelName(level)
        self.levelno = level
        self.pathname = pathname
        self.filename = pathname
        self.module = _UNKNOWN_MODULE
        self.exc_info = exc_info
        self.exc_text = None
        self.stack_info = sinfo
        self.lineno = lineno
        self.funcName = func  # type: ignore[assignment]  # None as LogRecord stores it
        self.created = created
        self.msecs = int((created - int(created)) * 1000) + 0.0
        self.relativeCreated = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        self.thread = None
        self.threadName = None
        self.processName = None
        self.process = None
        self.taskName = None


#: The module name ``LogRecord`` gives a record whose path is :data:`UNKNOWN_FILE`.
_UNKNOWN_MODULE = os.path.splitext(os.path.basename(UNKNOWN_FILE))[0]


def configure() -> None:
    """Log as every process does (:func:`configure_logging`), through :class:`LineHandler`."""
    configure_logging()
    logging._srcfile = None  # no caller's file and line: no line shows them
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12; typeshed lags
    logging.setLogRecordFactory(LineRecord)
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
