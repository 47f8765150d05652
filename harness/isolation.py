"""Keeping a started process to itself: a free loopback port, an environment of its own.

Every environment :func:`isolated_env` makes also carries :data:`OWNER_ENV`, which
names this harness process: whatever is started with it keeps that mark, so
:mod:`harness.leftovers` finds what a test or a benchmark left running.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from asyncrpc.runtime import config, serving

__all__ = ["OWNER", "OWNER_ENV", "PortPicker", "free_port", "isolated_env"]

#: The variable that marks a process as started by a harness process (not ASYNCRPC_*:
#: the product reads those, and it has no business with this one).
OWNER_ENV = "HARNESS_OWNER"
#: This harness process's mark: its pid and a random word, so a recycled pid is not it.
OWNER = f"{os.getpid()}-{secrets.token_hex(4)}"


class PortPicker:
    """Free loopback ports, never the same one twice in one harness process.

    A port is free when it is picked, and taken only once the process it is for
    binds it, so the kernel may hand the same port to the next bind of port 0:
    a test would then start its server and its gateway on one port. The picker
    remembers what it has handed out and asks again instead.
    """

    def __init__(self, probe: Callable[[str], int] = serving.free_port) -> None:
        self._probe = probe
        self._issued: set[int] = set()

    def __call__(self, host: str = config.DEFAULT_HOST) -> int:
        for _ in range(PICK_TRIES):
            port = self._probe(host)
            if port not in self._issued:
                self._issued.add(port)
                return port
        raise RuntimeError(f"no free port on {host} in {PICK_TRIES} tries that was not handed out")


#: How often :class:`PortPicker` asks the kernel before it gives up.
PICK_TRIES = 100
#: The harness's one picker: every test and benchmark of a process takes its ports from it.
free_port = PortPicker()


def isolated_env(run_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without the developer's RESONATE_* / ASYNCRPC_* settings, unbuffered.

    A spawned process then talks only to what the caller started; ``run_dir``
    becomes its run directory, ``extra`` is added last.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESONATE_", "ASYNCRPC_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env[OWNER_ENV] = OWNER
    # `asyncrpc up` serves its dashboard on a port of its own too, not the shared default.
    env[config.ENV_DASHBOARD_PORT] = str(free_port())
    if run_dir is not None:
        env[config.ENV_RUN_DIR] = str(run_dir)
    return env | extra
