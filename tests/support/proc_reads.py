"""Watching for opens of /proc paths made by asyncrpc's own code (macOS has no /proc).

An audit hook sees every ``open``; inside :func:`none_by_asyncrpc` it notes each
/proc path whose innermost opener, among asyncrpc's and psutil's frames, is
asyncrpc's. psutil may read /proc on Linux: that is its portable business.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import psutil

import asyncrpc

ASYNCRPC = Path(asyncrpc.__file__).parent
PSUTIL = Path(psutil.__file__).parent
#: Opens of /proc paths made by asyncrpc's code (not psutil's) while a watch is on.
PROC_OPENS: list[str] = []
WATCHING = False


def _opener(frame: FrameType | None) -> Path | None:
    """The file of the first frame, innermost first, in asyncrpc or in psutil."""
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(ASYNCRPC) or path.is_relative_to(PSUTIL):
            return path
        frame = frame.f_back
    return None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not WATCHING or event != "open" or not str(args[0]).startswith("/proc"):
        return
    opener = _opener(sys._getframe(1))
    if opener is not None and opener.is_relative_to(ASYNCRPC):
        PROC_OPENS.append(f"{args[0]} by {opener.relative_to(ASYNCRPC)}")


sys.addaudithook(_audit)  # hooks cannot be removed; this one only watches inside the block


@contextmanager
def none_by_asyncrpc() -> Iterator[None]:
    """Fail when the block ends if asyncrpc's own code opened a /proc path in it."""
    global WATCHING
    PROC_OPENS.clear()
    WATCHING = True
    try:
        yield
    finally:
        WATCHING = False
    assert PROC_OPENS == [], f"asyncrpc read /proc itself: {PROC_OPENS}"
