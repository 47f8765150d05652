"""`asyncrpc down`: stop everything `asyncrpc up` started in a run directory.

:func:`stop_everything` asks the supervisor through its control client; when no
supervisor answers (it died, or was killed), :func:`stop_orphans` stops the
replicas its state file lists, each only if it is still the very process the
supervisor started (pid plus start time). The CLI's `down` and the crash demo
both end this way.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from asyncrpc.runtime.errors import CommandError, NothingRunning
from asyncrpc.supervise.control_client import connect, orphans, wait_gone
from asyncrpc.supervise.rundir import RunDir

#: The name the supervisor's own process goes by in the list of what was stopped.
SUPERVISOR = "supervisor"
#: How long `down` waits for the template a detached supervisor was forked from to exit.
TEMPLATE_EXIT_S = 5.0


def stop_orphans(
    run_dir: RunDir, grace: float = 5.0, sleeper: Callable[[float], None] = time.sleep
) -> list[str]:
    """Stop what the state file lists without the supervisor's help; the names stopped."""
    state = run_dir.read_state()
    if state is None:
        return []
    left = orphans(state)
    if state.supervisor.alive():
        left.append((SUPERVISOR, state.supervisor))
    for name, process in left:
        process.signal(signal.SIGTERM, group=name != SUPERVISOR)
    deadline = time.monotonic() + grace
    while any(process.alive() for _, process in left) and time.monotonic() < deadline:
        sleeper(0.05)
    for name, process in left:
        process.signal(signal.SIGKILL, group=name != SUPERVISOR)
    for _, process in left:
        wait_gone(process, 5.0, sleeper)
    run_dir.clear_state()
    return [name for name, _ in left]


@dataclass(frozen=True)
class DownResult:
    """What `down` stopped; ``nothing_was_running`` when it found neither supervisor nor replica."""

    stopped: list[str] = field(default_factory=list)
    nothing_was_running: bool = False


def stop_everything(
    run_dir: RunDir, notify: Callable[[str], None] = lambda message: None
) -> DownResult:
    """Stop the supervisor and its replicas; nothing running is fine.

    A supervisor that does not answer is reported through ``notify`` and its
    replicas are stopped directly.
    """
    from asyncrpc.supervise.template_client import template_parent

    try:
        client = connect(run_dir)
        template = template_parent(client.supervisor)
        result = DownResult(client.down())
        if template is not None:  # it ends once the supervisor's channel closes
            wait_gone(template, TEMPLATE_EXIT_S)
        return result
    except NothingRunning:
        stopped = stop_orphans(run_dir)
        return DownResult(stopped, nothing_was_running=not stopped)
    except CommandError as error:
        notify(f"{error}; stopping its processes directly")
        return DownResult(stop_orphans(run_dir))


def remove_leftovers(run_dir: RunDir) -> None:
    """`down --clean`: delete the logs, the embedded server's database and the saved plan."""
    shutil.rmtree(run_dir.logs, ignore_errors=True)
    for path in run_dir.path.glob(f"{run_dir.db.name}*"):
        path.unlink(missing_ok=True)
    run_dir.plan_file.unlink(missing_ok=True)
