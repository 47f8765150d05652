"""What `up --detach` shows while it waits: which replicas are ready, which are still starting.

Starting ten processes takes seconds; without a word the prompt looks hung. On a
terminal one live line (a rich spinner) says what is ready and what is awaited, and
goes away when the wait ends; anywhere else (a pipe, a CI log) each replica gets one
plain line the moment it is ready, so nothing is redrawn into a file.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from asyncrpc.supervise.status import LauncherSnapshot, ReplicaState

if TYPE_CHECKING:
    from rich.status import Status


def progress_line(snapshot: LauncherSnapshot | None) -> str:
    """`2/5 ready  ready: server, gateway · starting: a.1 · waiting: b.1` (markup).

    Before the supervisor has written its first snapshot: that it is starting.
    """
    if snapshot is None:
        return "starting the supervisor..."
    groups = {
        "[green]ready:[/]": [ReplicaState.RUNNING],
        "[yellow]starting:[/]": [ReplicaState.STARTING],
        "[dim]waiting:[/]": [ReplicaState.NEW],
    }
    parts = []
    for label, states in groups.items():
        names = [r.name for r in snapshot.replicas if r.state in states]
        if names:
            parts.append(f"{label} {escape(', '.join(names))}")
    ready = sum(r.state is ReplicaState.RUNNING for r in snapshot.replicas)
    return f"{ready}/{len(snapshot.replicas)} ready  " + "  ·  ".join(parts)


class ReadyProgress:
    """Shows the wait on ``console``: a live line on a terminal, plain lines elsewhere.

    Use it as a context manager and hand :meth:`update` to the wait as its
    progress callback; the live line is gone when the block ends.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None
        self._announced: set[str] = set()

    def __enter__(self) -> ReadyProgress:
        if self.console.is_terminal:
            self._status = self.console.status(progress_line(None))
            self._status.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def update(self, snapshot: LauncherSnapshot | None) -> None:
        """The latest snapshot (None while the supervisor has written none)."""
        if self._status is not None:
            self._status.update(progress_line(snapshot))
            return
        if snapshot is None:
            return
        for replica in snapshot.replicas:
            if replica.state is ReplicaState.RUNNING and replica.name not in self._announced:
                self._announced.add(replica.name)
                self.console.print(f"{replica.name} is ready", markup=False, highlight=False)
