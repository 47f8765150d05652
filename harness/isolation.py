"""Keeping a started process to itself: a free loopback port, an environment of its own."""

from __future__ import annotations

import os
from pathlib import Path

from asyncrpc.runtime import config
from asyncrpc.runtime.serving import free_port

__all__ = ["free_port", "isolated_env"]


def isolated_env(run_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without the developer's RESONATE_* / ASYNCRPC_* settings, unbuffered.

    A spawned process then talks only to what the caller started; ``run_dir``
    becomes its run directory, ``extra`` is added last.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESONATE_", "ASYNCRPC_"))}
    env["PYTHONUNBUFFERED"] = "1"
    # `asyncrpc up` serves its dashboard on a port of its own too, not the shared default.
    env[config.ENV_DASHBOARD_PORT] = str(free_port())
    if run_dir is not None:
        env[config.ENV_RUN_DIR] = str(run_dir)
    return env | extra
