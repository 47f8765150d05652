"""Tests that fork inside the pytest process itself.

An earlier test's uvloop event loop that looked up an address leaves libuv's
worker threads in this process for its whole life (libuv never stops its thread
pool), so Python warns at each later ``os.fork`` that the process is
multi-threaded. The children these tests fork run Python code only and take no
lock those threads could hold, so the warning says nothing about them.
"""

from __future__ import annotations

import pytest

#: Marks a test whose forks run beside libuv's idle worker threads.
FORKS_BESIDE_LIBUV_WORKERS = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)
