"""The durable call graph of one invocation, read from the Resonate server.

Every promise the SDK creates for an invocation carries the tag
``resonate:origin = <root id>`` and names its caller in ``resonate:parent``,
so one ``promise.search`` by that tag (a request the real Resonate server
answers too) returns the whole graph, running or finished. This module
fetches it, arranges it as a tree, and renders it with rich or as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from resonate.codec import Codec, NoopEncryptor
from resonate.types import Value
from resonate_base import PROTOCOL_VERSION
from rich.text import Text
from rich.tree import Tree

from asyncrpc.server.router import Address

STATE_STYLES = {
    "pending": "yellow",
    "resolved": "green",
    "rejected": "red",
    "rejected_canceled": "red",
    "rejected_timedout": "red",
}


class CallGraphError(Exception):
    """The server could not be asked, or said no."""


@dataclass
class CallNode:
    """One promise of the graph: a function call, a durable sleep or a detached start."""

    id: str
    kind: str  # "call", "sleep", "detached" or "promise"
    function: str | None
    args: list[Any]
    group: str | None
    state: str
    value: Any
    created_at: int
    settled_at: int | None
    children: list[CallNode] = field(default_factory=list)

    @property
    def duration_ms(self) -> int | None:
        return None if self.settled_at is None else self.settled_at - self.created_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "function": self.function,
            "args": self.args,
            "group": self.group,
            "state": self.state,
            "value": self.value,
            "duration_ms": self.duration_ms,
            "children": [child.to_json() for child in self.children],
        }


def search_promises(
    client: httpx.Client, tags: dict[str, str], token: str | None = None
) -> list[dict[str, Any]]:
    """Every promise with these tags (``promise.search``, all pages), as wire JSON.

    ``client`` has the server's URL as its base URL. Raises :class:`CallGraphError`
    when the server cannot be asked or refuses.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    promises: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        data: dict[str, Any] = {"tags": tags, "limit": 1000}
        if cursor:
            data["cursor"] = cursor
        head = {"corrId": "search", "version": PROTOCOL_VERSION}
        envelope = {"kind": "promise.search", "head": head, "data": data}
        try:
            response = client.post("/", json=envelope, headers=headers)
            body = response.json()
        except httpx.HTTPError as exc:
            url = client.base_url
            raise CallGraphError(f"cannot reach the Resonate server at {url}: {exc}") from None
        except ValueError:
            status = response.status_code
            raise CallGraphError(f"the server answered {status} with no JSON") from None
        if response.status_code == 401:
            raise CallGraphError("the server refused the request: set RESONATE_TOKEN")
        page = body.get("data") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(page, dict):
            raise CallGraphError(f"promise.search failed ({response.status_code}): {page}")
        promises.extend(p for p in page.get("promises", []) if isinstance(p, dict))
        cursor = page.get("cursor")
        if not cursor:
            return promises


def fetch_call_graph(client: httpx.Client, root_id: str, token: str | None = None) -> CallNode:
    """The call graph rooted at ``root_id``; :class:`CallGraphError` if there is none."""
    records = search_promises(client, {"resonate:origin": root_id}, token)
    if not any(record["id"] == root_id for record in records):
        raise CallGraphError(f"no invocation with id {root_id!r} on this server")
    return build_tree(root_id, records)


def build_tree(root_id: str, records: list[dict[str, Any]]) -> CallNode:
    """Arrange promise records into a tree by their ``resonate:parent`` tags.

    The SDK tags every detached start with the root as its parent (its id is
    minted off the root), so who started it is not recorded. A step that
    returned a detached step's id, as this example's detached chain does,
    started it: such a step is moved under the one that returned its id.
    """
    nodes = {record["id"]: _node(record) for record in records}
    parents: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r.get("createdAt", 0), r["id"])):
        parent = record.get("tags", {}).get("resonate:parent")
        if record["id"] != root_id and parent in nodes and parent != record["id"]:
            parents[record["id"]] = parent
    starters = {
        node.value: node.id
        for node in nodes.values()
        if isinstance(node.value, str) and nodes.get(node.value, node).kind == "detached"
    }
    for child_id, starter in starters.items():
        if child_id in parents and not _is_ancestor(child_id, starter, parents):
            parents[child_id] = starter
    for child_id, parent in parents.items():
        nodes[parent].children.append(nodes[child_id])
    return nodes[root_id]


def _is_ancestor(candidate: str, node_id: str, parents: dict[str, str]) -> bool:
    """Whether ``candidate`` is ``node_id`` or above it (moving would make a cycle)."""
    seen: set[str] = set()
    while node_id not in seen:
        if node_id == candidate:
            return True
        seen.add(node_id)
        if node_id not in parents:
            return False
        node_id = parents[node_id]
    return False


def render(node: CallNode) -> Tree:
    """The tree as rich renders it: one line per call."""
    tree = Tree(_label(node))
    _add_children(tree, node)
    return tree


def _add_children(tree: Tree, node: CallNode) -> None:
    for child in node.children:
        _add_children(tree.add(_label(child)), child)


def _label(node: CallNode) -> Text:
    style = STATE_STYLES.get(node.state, "white")
    text = Text()
    if node.kind == "sleep":
        text.append("sleep", style="bold cyan")
    else:
        call = f"{node.function or '?'}({', '.join(map(repr, node.args))})"
        text.append(call, style="bold")
        if node.kind == "detached":
            text.append(" detached", style="magenta")
    if node.group:
        text.append(f" @ {node.group}", style="cyan")
    text.append(f"  {node.state}", style=style)
    if node.state != "pending" and node.kind != "sleep":
        text.append(f" = {json.dumps(node.value)}", style=style)
    if node.duration_ms is not None:
        text.append(f"  {node.duration_ms / 1000:.2f}s", style="dim")
    text.append(f"  {node.id}", style="dim")
    return text


def _node(record: dict[str, Any]) -> CallNode:
    tags = record.get("tags") or {}
    param = decode_value(record.get("param"))
    address = Address.parse(tags.get("resonate:target", ""))
    if tags.get("resonate:timer") == "true":
        kind = "sleep"
    elif record["id"].partition(":")[2].startswith("d"):
        kind = "detached"  # the SDK names a detached child {origin}:d<hash>
    elif isinstance(param, dict) and "func" in param:
        kind = "call"
    else:
        kind = "promise"
    return CallNode(
        id=record["id"],
        kind=kind,
        function=param.get("func") if isinstance(param, dict) else None,
        args=list(param.get("args", [])) if isinstance(param, dict) else [],
        group=address.group if address else None,
        state=record.get("state", "pending"),
        value=decode_value(record.get("value")),
        created_at=record.get("createdAt", 0),
        settled_at=record.get("settledAt"),
    )


_CODEC = Codec(NoopEncryptor())


def decode_value(value: Any) -> Any:
    """A promise's wire ``param`` / ``value`` (``{"headers", "data"}``) as Python (SDK codec)."""
    if not isinstance(value, dict) or value.get("data") is None:
        return None
    try:
        return _CODEC.decode(Value(headers=value.get("headers"), data=value.get("data")))
    except Exception:
        return value.get("data")


def function_of(record: dict[str, Any]) -> str | None:
    """The durable function a promise (wire JSON) invokes, if it invokes one."""
    param = decode_value(record.get("param"))
    return param.get("func") if isinstance(param, dict) else None
