"""What :func:`asyncrpc.network.join.join` gives the SDK's client besides its transports."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from resonate.error import ConnectorError

from asyncrpc.network.join import PollStream, join


class Refusing:
    """A request channel that notes each request's correlation id and reaches no server."""

    def __init__(self) -> None:
        self.corr_ids: list[str] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, req: str, headers: dict[str, str] | None = None) -> str:
        self.corr_ids.append(json.loads(req)["head"]["corrId"])
        raise ConnectorError(OSError("no server here"))


def test_requests_are_told_apart_by_a_counter_behind_a_random_prefix() -> None:
    """No uuid4 (a system call for its random bytes) per request on a node's path."""

    async def main() -> list[str]:
        network = Refusing()
        url = "http://127.0.0.1:9"
        stream = PollStream(url, pid="p-1", group="g")
        resonate, _ = join(url, group="g", pid="p-1", connection=(network, stream))
        for promise_id in ("x", "y"):
            with pytest.raises(ConnectorError):
                await resonate.get(promise_id)
        return network.corr_ids

    first, second = asyncio.run(main())
    prefix = re.fullmatch(r"(sr-[0-9a-f]{16}-)(\d+)", first)
    assert prefix is not None
    assert second == f"{prefix.group(1)}{int(prefix.group(2)) + 1}"
