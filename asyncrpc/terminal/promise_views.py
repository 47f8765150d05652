"""Promises on a terminal: the table of a search, and everything about one promise.

Rendering only: the records come from :mod:`asyncrpc.ops.promises`. Times are the
local clock's, to the second (the JSON of the same commands keeps milliseconds
since the epoch); values are decoded JSON, pretty-printed; an error shows its
message, and the pickled exception the Python SDK stores beside it is left out, as
it means nothing to a reader (it is never unpickled).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from asyncrpc.protocol.records import PromiseRecord
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import TARGET_TAG
from asyncrpc.readers.promises import PromisePage
from asyncrpc.terminal.call_graph_tree import STATE_STYLES

#: The Python SDK's pickled exception inside an error value: shown as left out.
PICKLE_KEY = "__py_pickle"


def when(ms: int | None) -> str:
    """Milliseconds since the epoch as local time, `2026-05-04 13:02:11`; `-` for none."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def state_text(state: PromiseState) -> Text:
    return Text(str(state), style=STATE_STYLES.get(state, ""))


def promises_table(page: PromisePage) -> Table:
    """One row a promise, newest first: id, function, state, created, settled."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("id", "function", "state", "created", "settled"):
        table.add_column(column, overflow="fold")
    for record in page.promises:
        table.add_row(
            Text(record.id),
            Text(record.function or ("sleep" if record.is_sleep else "-")),
            state_text(record.state),
            when(record.created_at),
            when(record.settled_at),
        )
    return table


def page_summary(page: PromisePage, pattern: str) -> str:
    """`3 promises match 'await-chain-*'` (and how many are shown, when not all)."""
    noun = "promise matches" if page.matched == 1 else "promises match"
    line = f"{page.matched} {noun} {pattern!r}"
    if page.truncated:
        line += f"; the newest {len(page.promises)} shown (--limit for more)"
    return line


def pretty(value: Any) -> Text:
    """A decoded value as indented JSON (not markup)."""
    return Text(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _without_pickle(value: Any) -> Any:
    if isinstance(value, Mapping) and PICKLE_KEY in value:
        return {k: v for k, v in value.items() if k != PICKLE_KEY} | {PICKLE_KEY: "(left out)"}
    return value


def promise_detail(record: PromiseRecord) -> RenderableType:
    """Everything about one promise, a field a line."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("id", Text(record.id))
    grid.add_row("function", Text(record.function or ("sleep" if record.is_sleep else "-")))
    grid.add_row("group", Text(record.group or "-"))
    grid.add_row("target", Text(record.tags.get(TARGET_TAG) or "-"))
    grid.add_row("state", state_text(record.state))
    grid.add_row("param", pretty(record.param))
    if record.state is PromiseState.RESOLVED:
        grid.add_row("value", pretty(record.value))
    elif record.settled:
        grid.add_row("error", Text(record.error or "-", style="red"))
        if record.value is not None:
            grid.add_row("value", pretty(_without_pickle(record.value)))
    grid.add_row("tags", pretty(dict(record.tags)) if record.tags else Text("-"))
    grid.add_row("timeout", when(record.timeout_at))
    grid.add_row("created", when(record.created_at))
    grid.add_row("settled", when(record.settled_at))
    if record.settled_at and record.created_at:
        seconds = (record.settled_at - record.created_at) / 1000
        grid.add_row("took", f"{seconds:.3f}s")
    return Group(grid)


def nothing_found(pattern: str) -> str:
    return f"no promise matches {escape(repr(pattern))}"
