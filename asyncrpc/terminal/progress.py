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
    """`ready: server, gateway · starting: a, b` (markup), or the wait for the supervisor."""
    if snapshot is None:
        return "starting the supervisor..."
    ready = [r.name for r in snapshot.replicas if r.state is ReplicaState.RUNNING]
    waiting = [r.name for r in snapshot.replicas if r.state is not ReplicaState.RUNNING]
    parts = []
    if ready:
        parts.append(f"[green]ready:[/] {escape(', '.join(ready))}")
    if waiting:
        parts.append(f"[yellow]starting:[/] {escape(', '.join(waiting))}")
    count = f"{len(ready)}/{len(snapshot.replicas)}"
    return f"{count} ready  " + "  ·  ".join(parts)


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
