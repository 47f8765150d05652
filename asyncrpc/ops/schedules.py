"""The schedules the server holds: what `asyncrpc schedules` lists and the overview shows.

One function for a blocking caller (:func:`list_schedules`, the CLI) and its twin for an
event loop (:func:`list_schedules_async`, the dashboard's overview), sharing every step
but the read: the embedded server answers ``schedule.search`` (as Resonate's server
does), resonate-pg's ``schedules`` table is read as it is (its ``schedule.search``
answers 501). The server to read is chosen as for promises
(:func:`asyncrpc.ops.promises.server_to_read`).
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncrpc.ops.promises import ServerToRead, reading
from asyncrpc.protocol.patterns import WILDCARD
from asyncrpc.protocol.records import ScheduleRecord
from asyncrpc.readers.server_reader import AsyncServerReader
from asyncrpc.runtime.errors import UsageError


def checked_pattern(pattern: str) -> str:
    """A schedule id pattern as a person typed it; UsageError (exit 2) for an empty one."""
    text = pattern.strip()
    if not text:
        raise UsageError("give a pattern: a schedule id, with * for any characters (or '*').")
    return text


def in_run_order(records: Sequence[ScheduleRecord]) -> list[ScheduleRecord]:
    """The schedules by their next run, soonest first (then by id): what runs next leads."""
    return sorted(records, key=lambda record: (record.next_run_at, record.id))


def list_schedules(server: ServerToRead, pattern: str = WILDCARD) -> list[ScheduleRecord]:
    """`asyncrpc schedules`: the schedules ``pattern`` names, soonest next run first."""
    wanted = checked_pattern(pattern)
    with reading(server) as reader:
        return in_run_order(reader.schedules(wanted))


async def list_schedules_async(
    reader: AsyncServerReader, pattern: str = WILDCARD
) -> list[ScheduleRecord]:
    """:func:`list_schedules` for an event loop, through the dashboard's reader."""
    return in_run_order(await reader.schedules(checked_pattern(pattern)))
