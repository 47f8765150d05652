"""What the demo reads from the Resonate server while the flow runs.

Every read goes through :class:`~asyncrpc.readers.server_reader.ServerReader`:
the call graph (the same read `asyncrpc tree` does) and a step's task state
(the task id is its promise's id). Every read answers ``None`` when the server
does not answer, because the demo polls and a server it just killed is
expected to be silent.
"""

from __future__ import annotations

from collections.abc import Callable

from asyncrpc.protocol.call_graph import CallKind, CallNode
from asyncrpc.protocol.errors import InvocationError
from asyncrpc.protocol.states import PromiseState
from asyncrpc.readers.server_reader import ServerReader
from asyncrpc.runtime.errors import CommandError

#: Seconds one read may take; the demo polls, so a slow answer is just asked again.
READ_TIMEOUT = 2.0
POLL_INTERVAL = 0.1


class DemoFailed(CommandError):
    """The flow did not recover as the demo expected (exit 1)."""


class ServerView:
    """Reads one server for the demo: None instead of an error while it is silent."""

    def __init__(self, server_url: str, token: str | None = None) -> None:
        self.server_url = server_url
        self.token = token
        self._reader = ServerReader(server_url, token, timeout=READ_TIMEOUT)

    def close(self) -> None:
        self._reader.close()

    def graph(self, root_id: str) -> CallNode | None:
        """The invocation's call graph, or None (not created yet, or no server answering)."""
        try:
            return self._reader.call_graph(root_id)
        except InvocationError:
            return None

    def task_state(self, task_id: str) -> str | None:
        """`pending`, `acquired`, `suspended`...; None when the server cannot tell."""
        try:
            return self._reader.task_state(task_id)
        except InvocationError:
            return None

    def answers(self) -> bool:
        return self._reader.answers()


# -- reading a call graph -------------------------------------------------------


def find_step(root: CallNode | None, function: str) -> CallNode | None:
    """The call of ``function`` in the graph (each flow calls each function once)."""
    if root is None:
        return None
    return next(
        (n for n in root.walk() if n.kind is not CallKind.SLEEP and n.function == function), None
    )


def sleep_of(step: CallNode | None) -> CallNode | None:
    """The durable sleep a step started, if it has started one."""
    if step is None:
        return None
    return next((child for child in step.children if child.kind is CallKind.SLEEP), None)


def path_to(root: CallNode, target: CallNode) -> list[CallNode]:
    """The calls from the root down to ``target`` (both included); [] if not in the tree."""
    if root is target:
        return [root]
    for child in root.children:
        found = path_to(child, target)
        if found:
            return [root, *found]
    return []


def settled(root: CallNode | None) -> bool:
    """True once no promise of the graph is pending any more."""
    return root is not None and all(node.state is not PromiseState.PENDING for node in root.walk())


def in_its_delay(root: CallNode | None, function: str) -> bool:
    """``function`` is running and sleeping durably: its promise and its timer are pending."""
    step = find_step(root, function)
    sleep = sleep_of(step)
    return (
        step is not None
        and step.state is PromiseState.PENDING
        and sleep is not None
        and sleep.state is PromiseState.PENDING
    )


def timer_fired(root: CallNode | None, function: str) -> bool:
    """``function``'s sleep is over (its timer promise settled)."""
    sleep = sleep_of(find_step(root, function))
    return sleep is not None and sleep.state is not PromiseState.PENDING


def finished_calls(root: CallNode, skip: CallNode | None = None) -> list[CallNode]:
    """Calls that have settled (not sleeps), except ``skip`` and the path to it."""
    on_path = {id(node) for node in path_to(root, skip)} if skip is not None else set()
    return [
        node
        for node in root.walk()
        if node.kind is not CallKind.SLEEP
        and node.state is PromiseState.RESOLVED
        and id(node) not in on_path
    ]


def wait_for[T](
    check: Callable[[], T | None],
    *,
    deadline: float,
    what: str,
    clock: Callable[[], float],
    sleeper: Callable[[float], None],
    interval: float = POLL_INTERVAL,
) -> T:
    """Poll ``check`` until it answers something truthy; DemoFailed naming ``what`` if too late."""
    while True:
        value = check()
        if value:
            return value
        if clock() > deadline:
            raise DemoFailed(f"gave up waiting for {what} (the --timeout ran out).")
        sleeper(interval)
