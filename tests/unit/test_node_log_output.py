"""A node's log lines: the same bytes as every process's format, through the shorter path."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from asyncrpc.node import log_output
from asyncrpc.runtime.log_lines import EscapingFormatter

DATEFMT = "%H:%M:%S"


def record(
    msg: str, *args: object, created: float = 1_700_000_000.25, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord("asyncrpc.lesson.services", logging.INFO, __file__, 1, msg, args, None)
    made.created = created
    made.msecs = int((created - int(created)) * 1000) + 0.0
    made.__dict__.update(extra)
    return made


def both(made: logging.LogRecord) -> tuple[str, str]:
    formatter = EscapingFormatter(log_output.LINE_FORMAT, DATEFMT)
    line = log_output.LineHandler(io.StringIO(), formatter).format(made)
    # The formatter sets ``message`` and ``asctime`` on the record: compare on a fresh one.
    again = logging.makeLogRecord(made.__dict__ | {"message": None, "asctime": None})
    return line, formatter.format(again)


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        ("[%s] running foo: calling bar", ("order-42",)),
        ("[%s] running bar", ("x\nERROR forged\x1b[2J",)),
        ("a line\u2028separator and \u00a0 no-break space %d", (3,)),
        ("no arguments at all", ()),
    ],
)
def test_a_line_is_what_the_formatter_writes(msg: str, args: tuple[object, ...]) -> None:
    fast, standard = both(record(msg, *args))
    assert fast == standard
    assert "\n" not in fast and "\x1b" not in fast


def test_the_time_is_formatted_anew_each_second() -> None:
    formatter = EscapingFormatter(log_output.LINE_FORMAT, DATEFMT)
    handler = log_output.LineHandler(io.StringIO(), formatter)
    lines = [handler.format(record("x", created=t)) for t in (100.001, 100.999, 101.5, 100.2)]
    expected = [formatter.format(record("x", created=t)) for t in (100.001, 100.999, 101.5, 100.2)]
    assert lines == expected


def test_a_traceback_keeps_the_formatter_layout() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        made = record("failed %s", "step", exc_info=sys.exc_info())
    fast, standard = both(made)
    assert fast == standard and "Traceback" in fast


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    switches = (logging._srcfile, logging.logThreads, logging.logProcesses)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging._srcfile, logging.logThreads, logging.logProcesses = switches
        logging.logMultiprocessing = True
        logging.logAsyncioTasks = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(logging.LogRecord)


def test_configure_swaps_the_process_handler_for_a_line_handler(
    root_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log_output.configure()
    handlers = logging.getLogger().handlers
    assert [type(h) for h in handlers] == [log_output.LineHandler]
    logging.getLogger("asyncrpc.lesson.services").info("[%s] running baz", "p\r1")
    logging.getLogger("asyncrpc.lesson.services").debug("below the level")
    out = capsys.readouterr().out
    assert out.endswith(" [p\\r1] running baz\n") and "below" not in out


def test_another_format_keeps_its_own_handler() -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    assert log_output.faster(handler) is handler


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        ("[%s] running foo: calling bar", ("order-42",)),
        ("%(step)s returned %(value)s", ({"step": "bar", "value": 2},)),
        ("no arguments", ()),
        ("an empty mapping %s", ({},)),
    ],
)
def test_a_line_record_has_every_field_a_log_record_has(
    root_restored: None, msg: str, args: tuple[object, ...]
) -> None:
    log_output.configure()
    made = [
        factory(
            "asyncrpc.lesson.services",
            logging.INFO,
            log_output.UNKNOWN_FILE,
            0,
            msg,
            args,
            None,
            "(unknown function)",
        )
        for factory in (log_output.LineRecord, logging.LogRecord)
    ]
    line, standard = (vars(one) for one in made)
    assert line.keys() == standard.keys()
    assert {k: v for k, v in line.items() if k not in TIMES} == {
        k: v for k, v in standard.items() if k not in TIMES
    }
    assert abs(line["created"] - standard["created"]) < 1
    assert made[0].getMessage() == made[1].getMessage()


def test_a_line_record_is_a_log_record_when_a_switch_is_on(root_restored: None) -> None:
    log_output.configure()
    logging.logThreads = True
    made = log_output.LineRecord("x", logging.INFO, log_output.UNKNOWN_FILE, 0, "m", (), None)
    assert made.thread is not None and made.threadName is not None


#: The fields that say when a record was made: two records made one after the other differ there.
TIMES = {"created", "msecs", "relativeCreated"}
