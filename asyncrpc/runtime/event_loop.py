"""Running a process's main coroutine on the fastest event loop this system has.

uvloop installs on Linux and macOS but not on Windows (and not on every other
system); without it the standard asyncio loop runs the very same code.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any


def choose_runner(
    find: Callable[[str], ModuleType] = importlib.import_module,
) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``uvloop.run`` where uvloop is installed, else ``asyncio.run``."""
    try:
        runner: Callable[[Coroutine[Any, Any, Any]], Any] = find("uvloop").run
        return runner
    except ImportError:
        return asyncio.run


def run[T](main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop if it is there, else on asyncio's loop."""
    result: T = choose_runner()(main)
    return result
