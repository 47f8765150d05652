"""A call graph as rich renders it: one line per promise, coloured by state.

Shared by `asyncrpc tree` and the crash demo's narration.
"""

from __future__ import annotations

import json

from rich.text import Text
from rich.tree import Tree

from asyncrpc.protocol.call_graph import CallKind, CallNode
from asyncrpc.protocol.states import PromiseState

STATE_STYLES = {
    PromiseState.PENDING: "yellow",
    PromiseState.RESOLVED: "green",
    PromiseState.REJECTED: "red",
    PromiseState.REJECTED_CANCELED: "red",
    PromiseState.REJECTED_TIMEDOUT: "red",
}


def render(node: CallNode) -> Tree:
    """The tree under ``node``, one line per call."""
    tree = Tree(_label(node))
    _add_children(tree, node)
    return tree


def _add_children(tree: Tree, node: CallNode) -> None:
    for child in node.children:
        _add_children(tree.add(_label(child)), child)


def _label(node: CallNode) -> Text:
    style = STATE_STYLES.get(node.state, "white")
    text = Text()
    if node.kind is CallKind.SLEEP:
        text.append("sleep", style="bold cyan")
    else:
        call = f"{node.function or '?'}({', '.join(map(repr, node.args))})"
        text.append(call, style="bold")
        if node.kind is CallKind.DETACHED:
            text.append(" detached", style="magenta")
    if node.group:
        text.append(f" @ {node.group}", style="cyan")
    text.append(f"  {node.state}", style=style)
    if node.state is not PromiseState.PENDING and node.kind is not CallKind.SLEEP:
        text.append(f" = {json.dumps(node.value)}", style=style)
    if node.duration_ms is not None:
        text.append(f"  {node.duration_ms / 1000:.2f}s", style="dim")
    text.append(f"  {node.id}", style="dim")
    return text
