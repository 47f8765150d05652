"""Keeping a started process to itself: a free loopback port, an environment of its own.

Every environment :func:`isolated_env` makes also carries :data:`OWNER_ENV`, which
names this harness process: whatever is started with it keeps that mark, so
:mod:`harness.leftovers` finds what a test or a benchmark left running.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from asyncrpc.runtime import config
from asyncrpc.runtime.serving import free_port

__all__ = ["OWNER", "OWNER_ENV", "free_port", "isolated_env"]

#: The variable that marks a process as started by a harness process (not ASYNCRPC_*:
#: the product reads those, and it has no business with this one).
OWNER_ENV = "HARNESS_OWNER"
#: This harness process's mark: its pid and a random word, so a recycled pid is not it.
OWNER = f"{os.getpid()}-{secrets.token_hex(4)}"


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
