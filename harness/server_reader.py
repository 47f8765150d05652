"""A minimal server reader for the benchmarks, until asyncrpc's ``ServerReader`` is in this tree.

Same shape as asyncrpc's: ``ServerReader(url, token=None)`` with ``get`` and
``search`` returning :class:`PromiseRecord` s. ``task_state`` reads a task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from asyncrpc.callgraph import decode_value
from asyncrpc.server.router import Address


@dataclass(frozen=True)
class PromiseRecord:
    id: str
    state: str
    tags: dict[str, str]
    value: Any
    settled_at: int | None

    @property
    def group(self) -> str | None:
        address = Address.parse(self.tags.get("resonate:target", ""))
        return address.group if address else None

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> PromiseRecord:
        return cls(
            record["id"],
            record.get("state", "pending"),
            record.get("tags") or {},
            decode_value(record.get("value")),
            record.get("settledAt"),
        )


class ServerReader:
    def __init__(self, url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url, timeout=10.0, headers=headers, trust_env=False)

    def _ask(self, kind: str, **data: Any) -> dict[str, Any]:
        envelope = {"kind": kind, "head": {"corrId": "read", "version": ""}, "data": data}
        return self.client.post("/", json=envelope).json().get("data") or {}

    def get(self, promise_id: str) -> PromiseRecord | None:
        record = self._ask("promise.get", id=promise_id).get("promise")
        return PromiseRecord.from_json(record) if record else None

    def search(
        self, tags: dict[str, str] | None = None, state: str | None = None, id_prefix: str = ""
    ) -> list[PromiseRecord]:
        data: dict[str, Any] = {"tags": tags or {}, "idPrefix": id_prefix, "limit": 1000}
        if state:
            data["state"] = state
        found = self._ask("promise.search", **data).get("promises", ())
        return [PromiseRecord.from_json(record) for record in found]

    def task_state(self, task_id: str) -> str | None:
        return (self._ask("task.get", id=task_id).get("task") or {}).get("state")
