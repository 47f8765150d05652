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
