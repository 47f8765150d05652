"""The protocol's read requests and the decoding of their answers (no I/O).

A request is an envelope ``{"kind", "head", "data"}`` (:func:`envelope`); an
answer is its status and ``data`` (:class:`Answer`, read from a body by
:func:`answer_of`). The answers of the embedded server and of Resonate's own
servers both decode here: a status in the envelope's ``head`` or at its top
level, and an error's ``data`` that is a string or an object. Each read's
answer turns into records by one function (:func:`promise_of`,
:func:`page_of`, :func:`task_state_of`, :func:`task_of`, :func:`graph_of`,
:func:`schedule_page_of`, :func:`acquisitions_of`), which the readers
over HTTP and over Postgres (:mod:`asyncrpc.readers`) share, blocking or not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resonate_base import PROTOCOL_VERSION

from asyncrpc.protocol.call_graph import CallNode, build_tree
from asyncrpc.protocol.errors import ServerRefused, UnknownInvocation
from asyncrpc.protocol.patterns import WILDCARD, matches
from asyncrpc.protocol.records import (
    MalformedRecord,
    PromiseRecord,
    ScheduleRecord,
    TaskAcquisition,
    TaskRecord,
)
from asyncrpc.protocol.states import PromiseState

#: Promises asked for per ``promise.search`` page.
PAGE_SIZE = 1000
#: Schedules asked for per ``schedule.search`` page (the most Resonate's server gives).
SCHEDULE_PAGE_SIZE = 1000
#: ``promise.search``'s ``order`` that answers the newest matches first.
NEWEST = "newest"


@dataclass(frozen=True)
class Answer:
    """One answer of the server: its status and its ``data``."""

    status: int
    data: Any


def envelope(kind: str, token: str | None, **data: Any) -> dict[str, Any]:
    """A protocol request: ``{"kind", "head", "data"}``, with the token when there is one."""
    head: dict[str, Any] = {"corrId": uuid.uuid4().hex, "version": PROTOCOL_VERSION}
    if token:
        head["auth"] = token
    return {"kind": kind, "head": head, "data": data}


@dataclass
class Search:
    """One ``promise.search`` over all its pages: ask :meth:`request` until :attr:`done`.

    With ``newest``, only the newest that many matches, newest first, in one page
    (the embedded server's ``order: newest``): what it costs does not grow with
    the promises stored.
    """

    tags: Mapping[str, str] | None
    state: PromiseState | str | None
    id_prefix: str | None
    newest: int | None = None
    found: list[PromiseRecord] = field(default_factory=list)
    cursor: str | None = None
    done: bool = False

    def request(self) -> dict[str, Any]:
        """The ``data`` of the request for the next page."""
        data: dict[str, Any] = {"limit": PAGE_SIZE}
        if self.newest is not None:
            data = {"limit": self.newest, "order": NEWEST}
        if self.tags:
            data["tags"] = dict(self.tags)
        if self.state is not None:
            data["state"] = str(self.state)
        if self.id_prefix:
            data["idPrefix"] = self.id_prefix
        if self.cursor:
            data["cursor"] = self.cursor
        return data

    def take(self, answer: Answer) -> None:
        """Keep a page's records; done once the server gives no cursor for another."""
        records, self.cursor = page_of(answer)
        self.found.extend(records)
        self.done = self.cursor is None or self.newest is not None


@dataclass
class ScheduleSearch:
    """One ``schedule.search`` over all its pages: ask :meth:`request` until :attr:`done`.

    ``pattern`` is an id with ``*`` wildcards; the request carries it as ``id`` (the
    embedded server narrows by it, a server that ignores it answers more), and
    :meth:`take` keeps only the schedules it names, so every server answers alike.
    """

    pattern: str = WILDCARD
    found: list[ScheduleRecord] = field(default_factory=list)
    cursor: str | None = None
    done: bool = False

    def request(self) -> dict[str, Any]:
        """The ``data`` of the request for the next page."""
        data: dict[str, Any] = {"limit": SCHEDULE_PAGE_SIZE}
        if self.pattern != WILDCARD:
            data["id"] = self.pattern
        if self.cursor:
            data["cursor"] = self.cursor
        return data

    def take(self, answer: Answer) -> None:
        """Keep a page's schedules that match; done once the server gives no cursor."""
        records, self.cursor = schedule_page_of(answer)
        self.found.extend(record for record in records if matches(self.pattern, record.id))
        self.done = self.cursor is None


def answer_of(status_code: int, text: str) -> Answer:
    """An answer's body (``text``, sent with ``status_code``) as status and data."""
    try:
        body = json.loads(text)
    except ValueError:
        raise ServerRefused(
            f"the server answered {status_code} without JSON: {text[:200]!r}"
        ) from None
    if status_code == 401:
        raise ServerRefused("the server refused the request (401): set RESONATE_TOKEN")
    if not isinstance(body, Mapping):
        raise ServerRefused(f"the server answered {status_code}: {body!r}")
    head = body.get("head")
    status = head.get("status") if isinstance(head, Mapping) else body.get("status")
    if not isinstance(status, int):
        status = status_code
    return Answer(status=status, data=body.get("data", body))


def refused(kind: str, answer: Answer) -> ServerRefused:
    """The error for an answer of ``kind`` that is a refusal, its detail in words."""
    detail = (
        answer.data.get("error", answer.data) if isinstance(answer.data, Mapping) else answer.data
    )
    return ServerRefused(f"{kind} failed ({answer.status}): {detail}")


def promise_of(answer: Answer) -> PromiseRecord | None:
    """A ``promise.get`` answer as a record; None when the promise does not exist."""
    if answer.status == 404:
        return None
    data = answer.data
    if answer.status != 200 or not isinstance(data, Mapping):
        raise refused("promise.get", answer)
    try:
        return PromiseRecord.from_wire(data.get("promise", data))
    except MalformedRecord as exc:
        raise ServerRefused(f"promise.get answered something else: {exc}") from None


def page_of(answer: Answer) -> tuple[list[PromiseRecord], str | None]:
    """A ``promise.search`` answer: the page's records and the cursor of the next one."""
    data = answer.data
    if answer.status != 200 or not isinstance(data, Mapping):
        raise refused("promise.search", answer)
    promises = data.get("promises")
    try:
        records = [PromiseRecord.from_wire(p) for p in promises or ()]
    except MalformedRecord as exc:
        raise ServerRefused(f"promise.search answered something else: {exc}") from None
    cursor = data.get("cursor")
    return records, cursor if isinstance(cursor, str) and cursor else None


def task_state_of(answer: Answer) -> str | None:
    """A ``task.get`` answer's task state (``pending``, ``acquired`` ...); None without one."""
    task = answer.data.get("task") if isinstance(answer.data, Mapping) else None
    state = task.get("state") if isinstance(task, Mapping) else None
    return state if answer.status == 200 and isinstance(state, str) else None


def task_of(answer: Answer) -> TaskRecord | None:
    """A ``task.get`` answer's task; None when there is none (the promise has no task)."""
    task = answer.data.get("task") if isinstance(answer.data, Mapping) else None
    if answer.status != 200 or task is None:
        return None
    try:
        return TaskRecord.from_wire(task)
    except MalformedRecord as exc:
        raise ServerRefused(f"task.get answered something else: {exc}") from None


def schedule_page_of(answer: Answer) -> tuple[list[ScheduleRecord], str | None]:
    """A ``schedule.search`` answer: the page's schedules and the cursor of the next one."""
    data = answer.data
    if answer.status == 501:
        raise ServerRefused(
            "this server does not answer schedule.search (resonate.sql answers 501); "
            "read its schedules from its database instead (a postgresql:// server URL)"
        )
    if answer.status != 200 or not isinstance(data, Mapping):
        raise refused("schedule.search", answer)
    try:
        records = [ScheduleRecord.from_wire(s) for s in data.get("schedules") or ()]
    except MalformedRecord as exc:
        raise ServerRefused(f"schedule.search answered something else: {exc}") from None
    cursor = data.get("cursor")
    return records, cursor if isinstance(cursor, str) and cursor else None


def acquisitions_of(answer: Answer) -> tuple[TaskAcquisition, ...] | None:
    """A ``task.acquisitions`` answer, oldest first; None when the server keeps no record.

    The kind is the embedded server's extension: Resonate's servers answer 501, and the
    embedded one 404 for a task it has no record of (never acquired, or long forgotten).
    """
    if answer.status in (404, 501):
        return None
    data = answer.data
    if answer.status != 200 or not isinstance(data, Mapping):
        raise refused("task.acquisitions", answer)
    try:
        return tuple(TaskAcquisition.from_wire(a) for a in data.get("acquisitions") or ())
    except MalformedRecord as exc:
        raise ServerRefused(f"task.acquisitions answered something else: {exc}") from None


def graph_of(root_id: str, records: list[PromiseRecord]) -> CallNode:
    """An invocation's promises as its call graph; :class:`UnknownInvocation` without its root."""
    if not any(record.id == root_id for record in records):
        raise UnknownInvocation(f"no invocation with id {root_id!r}")
    return build_tree(root_id, records)
