"""Log lines escape the control characters a peer put into the text they log."""

from __future__ import annotations

import io
import logging

from asyncrpc.runtime import log_lines


def test_a_newline_or_terminal_escape_in_logged_text_stays_on_one_visible_line() -> None:
    stream = io.StringIO()
    log_lines.configure(logging.INFO, stream, "%(levelname)s %(message)s")
    try:
        logging.getLogger("asyncrpc.test").info("stream open pid=%s", "x\nERROR forged\x1b[2J")
    finally:
        logging.basicConfig(force=True)
    lines = stream.getvalue().splitlines()
    assert lines == ["INFO stream open pid=x\\nERROR forged\\x1b[2J"]


def test_a_traceback_keeps_its_own_lines() -> None:
    stream = io.StringIO()
    log_lines.configure(logging.INFO, stream, "%(message)s")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("asyncrpc.test").exception("failed\r")
    finally:
        logging.basicConfig(force=True)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "failed\\r" and lines[-1] == "ValueError: boom"


#: Every character str.splitlines splits on, besides the newline itself.
SPLITTERS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def test_no_character_a_line_reader_splits_on_leaves_the_formatter_raw() -> None:
    stream = io.StringIO()
    log_lines.configure(logging.INFO, stream, "%(levelname)s %(message)s")
    try:
        logging.getLogger("asyncrpc.test").info("stream open pid=%s", "x\u2028CRITICAL FORGED")
        logging.getLogger("asyncrpc.test").info("all of them: %s", SPLITTERS)
    finally:
        logging.basicConfig(force=True)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "INFO stream open pid=x\\u2028CRITICAL FORGED",
        "INFO all of them: \\r\\x0b\\x0c\\x1c\\x1d\\x1e\\x85\\u2028\\u2029",
    ]


def test_a_log_file_splits_at_newlines_only() -> None:
    written = f"one{SPLITTERS}two\r\n\nthree\ttab\n"
    assert log_lines.log_lines(written) == [
        "one\\r\\x0b\\x0c\\x1c\\x1d\\x1e\\x85\\u2028\\u2029two",
        "",
        "three\ttab",
    ]
    assert log_lines.log_lines("") == [] and log_lines.log_lines("no end") == ["no end"]
