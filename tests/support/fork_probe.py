"""A program for :func:`asyncrpc.ops.up_fork.fork_program` to run: it reports what it inherited.

Run as `python -m tests.support.fork_probe ARGS...` (or forked as if it were: it
reports only when it runs as ``__main__``), it prints one JSON object (its
arguments, what `ps` shows, its session, what its stdin is, its open descriptors,
two variables of its environment) and exits with code 7.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def open_descriptors() -> list[int]:
    """This process's open descriptors (not the one the listing itself used)."""
    listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    return sorted(fd for fd in listed if os.path.exists(f"/proc/self/fd/{fd}"))


if __name__ == "__main__":
    report = {
        "argv": sys.argv[1:],
        "title": Path("/proc/self/cmdline").read_text().replace("\0", " ").strip(),
        "own_session": os.getsid(0) == os.getpid(),
        "stdin": os.readlink("/proc/self/fd/0"),
        "fds": open_descriptors(),
        "probe_env": os.environ.get("PROBE"),
        "other_env": os.environ.get("PROBE_NOT_HANDED"),
    }
    print(json.dumps(report))
    sys.exit(7)
