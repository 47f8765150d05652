"""Schedules on a terminal: one row each, soonest next run first.

Rendering only: the records come from :mod:`asyncrpc.ops.schedules`. Times are the local
clock's, to the second, as for promises (the JSON keeps milliseconds since the epoch).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from asyncrpc.protocol.records import ScheduleRecord
from asyncrpc.terminal.promise_views import when


def schedules_table(records: Sequence[ScheduleRecord]) -> Table:
    """id, cron, the group its promises go to, next run, last run, the promise id template."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("id", "cron", "group", "next run", "last run", "promise id"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            Text(record.id),
            Text(record.cron),
            Text(record.group or "-"),
            when(record.next_run_at),
            when(record.last_run_at),
            Text(record.promise_id),
        )
    return table


def schedules_summary(records: Sequence[ScheduleRecord], pattern: str) -> str:
    """One line under the table: how many, or that there are none."""
    what = "schedules" if pattern == "*" else f"schedules matching {pattern!r}"
    if not records:
        return f"no {what} on the server."
    return f"{len(records)} {what}."
