"""The in-process server benchmark sends requests the server takes as the SDK's."""

from __future__ import annotations

import pytest

from benchmarks import server_work


@pytest.mark.parametrize("memory", [True, False])
def test_a_round_answers_every_request_of_each_chain(memory: bool) -> None:
    result = server_work.one_round(flows=3, warmup=1, memory=memory)
    assert result["requests_per_flow"] == 13
    # a, b and c each get their execute, a its resume, the gateway its unblock
    assert result["pushes_per_flow"] == 5
    assert result["cpu_us_per_request"] > 0


def test_a_chain_names_each_of_its_promises_by_the_root() -> None:
    bodies = [body for body, _ in server_work.await_chain("root-7")]
    assert len(bodies) == 13
    assert all(b"root-7" in body for body in bodies)
    assert [behind for _, behind in server_work.await_chain("x")].count(True) == 1
