"""What the demo reads from the Resonate server while the flow runs.

The call graph comes from :mod:`asyncrpc.callgraph` (one ``promise.search`` by
the invocation's origin tag, the same read `asyncrpc tree` does); a task's
state from ``task.get`` (the task id is its promise's id). Every read answers
``None`` when the server does not answer, because the demo polls and a server
it just killed is expected to be silent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from resonate_base import PROTOCOL_VERSION

from asyncrpc import callgraph
from asyncrpc.callgraph import CallNode
from asyncrpc.launcher.errors import LauncherError

#: Seconds one read may take; the demo polls, so a slow answer is just asked again.
READ_TIMEOUT = 2.0
POLL_INTERVAL = 0.1


class DemoFailed(LauncherError):
    """The flow did not recover as the demo expected (exit 1)."""


class ServerView:
    """Reads one server: call graphs, task states, whether it answers at all."""

    def __init__(self, server_url: str, token: str | None = None) -> None:
        self.server_url = server_url
        self.token = token
        self._client = httpx.Client(base_url=server_url, timeout=READ_TIMEOUT, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def graph(self, root_id: str) -> CallNode | None:
        """The invocation's call graph, or None (not created yet, or no server answering)."""
        try:
            return callgraph.fetch_call_graph(self._client, root_id, self.token)
        except (callgraph.CallGraphError, httpx.HTTPError, KeyError, TypeError):
            return None

    def task_state(self, task_id: str) -> str | None:
        """`pending`, `acquired`, `suspended`...; None when the server cannot tell."""
        head: dict[str, Any] = {"corrId": uuid.uuid4().hex, "version": PROTOCOL_VERSION}
        headers = {}
        if self.token:
            head["auth"] = self.token
            headers["Authorization"] = f"Bearer {self.token}"
        envelope = {"kind": "task.get", "head": head, "data": {"id": task_id}}
        try:
            body = self._client.post("/", json=envelope, headers=headers).json()
            return str(body["data"]["task"]["state"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def answers(self) -> bool:
        try:
            self._client.get("/healthz")
        except httpx.HTTPError:
            return False
        return True


# -- reading a call graph -------------------------------------------------------


def walk(node: CallNode) -> Iterator[CallNode]:
    yield node
    for child in node.children:
        yield from walk(child)


def find_step(root: CallNode | None, function: str) -> CallNode | None:
    """The call of ``function`` in the graph (each flow calls each function once)."""
    if root is None:
        return None
    return next((n for n in walk(root) if n.kind != "sleep" and n.function == function), None)


def sleep_of(step: CallNode | None) -> CallNode | None:
    """The durable sleep a step started, if it has started one."""
    if step is None:
        return None
    return next((child for child in step.children if child.kind == "sleep"), None)


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
    return root is not None and all(node.state != "pending" for node in walk(root))


def in_its_delay(root: CallNode | None, function: str) -> bool:
    """``function`` is running and sleeping durably: its promise and its timer are pending."""
    step = find_step(root, function)
    sleep = sleep_of(step)
    return (
        step is not None
        and step.state == "pending"
        and sleep is not None
        and (sleep.state == "pending")
    )


def timer_fired(root: CallNode | None, function: str) -> bool:
    """``function``'s sleep is over (its timer promise settled)."""
    sleep = sleep_of(find_step(root, function))
    return sleep is not None and sleep.state != "pending"


def finished_calls(root: CallNode, skip: CallNode | None = None) -> list[CallNode]:
    """Calls that have settled (not sleeps), except ``skip`` and the path to it."""
    on_path = {id(node) for node in path_to(root, skip)} if skip is not None else set()
    return [
        node
        for node in walk(root)
        if node.kind != "sleep" and node.state == "resolved" and id(node) not in on_path
    ]


def wait_for(
    check: Callable[[], Any],
    *,
    deadline: float,
    what: str,
    clock: Callable[[], float],
    sleeper: Callable[[float], None],
    interval: float = POLL_INTERVAL,
) -> Any:
    """Poll ``check`` until it answers something truthy; DemoFailed naming ``what`` if too late."""
    while True:
        value = check()
        if value:
            return value
        if clock() > deadline:
            raise DemoFailed(f"gave up waiting for {what} (the --timeout ran out).")
        sleeper(interval)
