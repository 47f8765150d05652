"""The harness names the tests import from here; they live in :mod:`harness`."""

from harness.isolation import free_port, isolated_env
from harness.processes import ASYNCRPC, Process, Processes
from harness.waiting import http_ok, wait_until

__all__ = [
    "ASYNCRPC",
    "Process",
    "Processes",
    "free_port",
    "http_ok",
    "isolated_env",
    "wait_until",
]
