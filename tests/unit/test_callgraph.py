"""Building and rendering a call graph from promise records as the server returns them."""

from __future__ import annotations

import base64
import json
from typing import Any

from rich.console import Console

from asyncrpc.protocol.call_graph import build_tree
from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.terminal.call_graph_tree import render


def encoded(value: Any) -> dict[str, str]:
    return {"data": base64.b64encode(json.dumps(value).encode()).decode()}


def record(
    id: str, parent: str, func: str | None, group: str, state: str, value: Any = None, **tags: str
) -> dict[str, Any]:
    param = encoded({"func": func, "args": [], "kwargs": {}, "version": 1}) if func else {}
    return PromiseRecord.from_wire(
        {
            "id": id,
            "state": state,
            "param": param,
            "value": encoded(value) if state == "resolved" and value is not None else None,
            "tags": {
                "resonate:parent": parent,
                "resonate:origin": "r",
                "resonate:target": f"poll://any@{group}",
                **tags,
            },
            "createdAt": 1000,
            **({"settledAt": 1500} if state != "pending" else {}),
        }
    )


AWAIT_CHAIN = [
    record("r", "r", "foo", "service-a", "resolved", 3),
    record("r:1", "r", "bar", "service-b", "resolved", 2),
    record("r:1.1", "r:1", "baz", "service-c", "pending"),
    record("r:1.1.1", "r:1.1", None, "service-c", "pending", **{"resonate:timer": "true"}),
]


def test_tree_nests_children_under_their_parents() -> None:
    root = build_tree("r", AWAIT_CHAIN)
    assert (root.function, root.value, root.group) == ("foo", 3, "service-a")
    (bar,) = root.children
    (baz,) = bar.children
    (sleep,) = baz.children
    assert (bar.function, bar.value) == ("bar", 2)
    assert (baz.function, baz.state, baz.value) == ("baz", "pending", None)
    assert sleep.kind == "sleep"
    assert root.duration_ms == 500 and baz.duration_ms is None


def test_detached_steps_sit_under_the_step_that_returned_their_id() -> None:
    records = [
        record("r", "r", "qux", "service-d", "resolved", "r:dabc"),
        record("r:dabc", "r", "quz", "service-e", "resolved", "r:ddef"),
        record("r:ddef", "r", "cog", "service-f", "resolved", 3),
    ]
    root = build_tree("r", records)
    (quz,) = root.children
    (cog,) = quz.children
    assert (quz.kind, quz.function, cog.kind, cog.value) == ("detached", "quz", "detached", 3)


def test_a_detached_step_whose_starter_has_not_returned_stays_under_the_root() -> None:
    records = [
        record("r", "r", "qux", "service-d", "resolved", "r:dabc"),
        record("r:dabc", "r", "quz", "service-e", "pending"),
        record("r:ddef", "r", "cog", "service-f", "resolved", 3),
        record("r:dxyz", "r", "cog", "service-f", "resolved", "r:dxyz"),  # its own id: no cycle
    ]
    root = build_tree("r", records)
    assert [child.id for child in root.children] == ["r:dabc", "r:ddef", "r:dxyz"]


def test_render_shows_functions_states_and_values() -> None:
    console = Console(record=True, width=200)
    console.print(render(build_tree("r", AWAIT_CHAIN)))
    text = console.export_text()
    for expected in (
        "foo() @ service-a  resolved = 3",
        "bar() @ service-b  resolved = 2",
        "baz() @ service-c  pending",
        "sleep @ service-c",
    ):
        assert expected in text, text


def test_json_form_has_the_whole_graph() -> None:
    tree = build_tree("r", AWAIT_CHAIN).to_json()
    assert tree["children"][0]["children"][0]["function"] == "baz"
