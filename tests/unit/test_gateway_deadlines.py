"""The waiting flows' deadlines: each task cancelled at its own, by one shared timer."""

from __future__ import annotations

import asyncio

from asyncrpc.gateway.deadlines import SLACK, Deadlines, of_loop


async def sleeper(seconds: float) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        return "cancelled"
    return "slept"


def test_each_task_is_cancelled_at_its_own_deadline_and_only_then() -> None:
    async def main() -> list[tuple[str, bool, float]]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        began = loop.time()
        tasks = [asyncio.create_task(sleeper(s)) for s in (10, 10, 0.05, 10)]
        marks = [
            deadlines.at(began + after, task)
            for after, task in zip((0.3, 0.1, 0.2, 5.0), tasks, strict=True)
        ]
        ended: dict[int, float] = {}
        for n, task in enumerate(tasks):
            task.add_done_callback(lambda _, n=n: ended.setdefault(n, loop.time() - began))
        await asyncio.sleep(0.1)  # the third sleeps 0.05 s: its deadline is done in time
        marks[2].done()
        await asyncio.wait(tasks[:2], timeout=5)
        marks[3].done()
        tasks[3].cancel()
        results = await asyncio.gather(*tasks)
        return [(r, m.fired, ended[n]) for n, (r, m) in enumerate(zip(results, marks, strict=True))]

    (first, second, third, fourth) = asyncio.run(main())
    assert first[:2] == ("cancelled", True) and 0.29 <= first[2] < 1.5
    assert second[:2] == ("cancelled", True) and 0.09 <= second[2] < 1.0
    assert third[:2] == ("slept", False)
    assert fourth[:2] == ("cancelled", False)  # cancelled from elsewhere, not by its deadline


def test_finished_deadlines_do_not_pile_up() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        deadlines = of_loop(loop)
        assert of_loop(loop) is deadlines
        task = asyncio.current_task()
        assert task is not None
        for _ in range(10 * SLACK):
            deadlines.at(loop.time() + 60, task).done()
        waiting = deadlines.at(loop.time() + 0.05, task)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            task.uncancel()
        assert waiting.fired
        return len(deadlines._heap), deadlines._waiting

    held, waiting = asyncio.run(main())
    assert held <= 2 * SLACK + 1
    assert waiting == 0
