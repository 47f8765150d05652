"""What `up --detach` shows while it waits: a live line on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from asyncrpc.supervise.status import ReplicaState
from asyncrpc.terminal.progress import ReadyProgress, progress_line
from tests.support.status import replica_status, snapshot_of


def test_the_line_says_what_is_ready_starting_and_waiting() -> None:
    snapshot = snapshot_of(
        replica_status("server", ReplicaState.RUNNING),
        replica_status("gateway", ReplicaState.RUNNING),
        replica_status("a.1", ReplicaState.STARTING),
        replica_status("b.1", ReplicaState.NEW),
    )
    text = Console().render_str(progress_line(snapshot)).plain
    assert text == "2/4 ready  ready: server, gateway  ·  starting: a.1  ·  waiting: b.1"
    assert progress_line(None) == "starting the supervisor..."


def test_off_a_terminal_each_replica_gets_one_line_when_it_is_ready() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    starting = snapshot_of(
        replica_status("server", ReplicaState.RUNNING), replica_status("a.1", ReplicaState.STARTING)
    )
    ready = snapshot_of(
        replica_status("server", ReplicaState.RUNNING), replica_status("a.1", ReplicaState.RUNNING)
    )
    with ReadyProgress(console) as progress:
        for snapshot in (None, starting, starting, ready):
            progress.update(snapshot)
    assert out.getvalue().splitlines() == ["server is ready", "a.1 is ready"]


def test_on_a_terminal_the_live_line_is_gone_once_the_wait_ends() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    with ReadyProgress(console) as progress:
        progress.update(snapshot_of(replica_status("server", ReplicaState.STARTING)))
    shown = out.getvalue()
    assert "0/1 ready" in shown and "is ready" not in shown  # the live line, no plain lines
    assert shown.endswith("\x1b[2K")  # the line erased when the wait ended
