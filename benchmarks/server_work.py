"""The server's own work on a sequential await chain's requests, with no process in between.

    python -m benchmarks.server_work [--flows N] [--rounds R] [--against DIR] [--memory]
    python -m benchmarks.server_work --instructions [--flows N] [--against DIR] [--memory]

The requests of one await chain as the SDK sends them (:func:`await_chain`: the
gateway's create and its pipelined listen; at a and b an acquire, a fenced create of
the child and a suspend; c's acquire and fulfill; the resumed acquires and fulfills)
go one after another through :meth:`ServerApp.post
<asyncrpc.server.app.ServerApp.post>`, the fast lane's entry, in this process:
the guard, the parse, the state machine, the commit to a SQLite file, the pushes to
poll streams of groups a, b, c and the gateway (opened through the ASGI app, their
frames taken at once), the answer and the metrics. What is left out is what the
hops part measures apart: sockets, uvicorn's parse, other processes.

A round runs ``--flows`` chains after a warm-up in a fresh process and prints its
CPU microseconds per request. With ``--against DIR`` (another checkout of the
project, say ``git archive`` of main unpacked) rounds alternate between that
code and this one, each round starting with the other side, and the result is
the median over the rounds of this side's time against the other's: the same
machine, the same minute, whatever else runs on it. ``--instructions`` counts
user-space instructions per request under valgrind instead, which the machine's
load does not change. ``--memory`` keeps the database in memory, as the hops
part's traced server does.

Requests that no flow waits for (a suspend, a listen) are applied after the next
commit or at once when none comes (``beside_the_path_wait_s=0``): one request
at a time, there is never another commit to wait for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resonate_base import PROTOCOL_VERSION

#: Chains run before the counted ones under valgrind (in both of its rounds alike).
WARMUP_UNDER_VALGRIND = 20
#: The chains of the short round whose count is taken off the long one's.
SHORT_UNDER_VALGRIND = 10
FAR = 1_796_557_842_452
HEADERS = [
    (b"host", b"127.0.0.1:8001"),
    (b"content-type", b"application/json"),
    (b"content-length", b"300"),
]
#: Set (to anything): the store is an in-memory SQLite database, as in the hops part.
MEMORY_ENV = "SERVER_WORK_MEMORY"
GROUPS = (("service-a", "a-1"), ("service-b", "b-1"), ("service-c", "c-1"), ("gateway", "gw-1"))
FUNCTIONS = {"foo": "eyJhcmdzIjpbXSwia3dhcmdzIjp7fSwiZnVuYyI6ImZvbyIsInZlcnNpb24iOjF9"}
CHILD = "eyJhcmdzIjpbXSwia3dhcmdzIjp7fSwiZnVuYyI6ImJhciIsInZlcnNpb24iOjF9"
GRANDCHILD = "eyJhcmdzIjpbXSwia3dhcmdzIjp7fSwiZnVuYyI6ImJheiIsInZlcnNpb24iOjF9"


def _envelope(kind: str, corr: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "head": {"corrId": corr, "version": PROTOCOL_VERSION}, "data": data}


def _body(kind: str, corr: str, data: dict[str, Any]) -> bytes:
    return json.dumps(_envelope(kind, corr, data), separators=(",", ":")).encode()


def _create(corr: str, promise_id: str, param: str, tags: dict[str, str]) -> dict[str, Any]:
    data = {"id": promise_id, "timeoutAt": FAR, "param": {"data": param}, "tags": tags}
    return _envelope("promise.create", corr, data)


def _acquire(corr: str, task_id: str, version: int, pid: str) -> bytes:
    return _body("task.acquire", corr, {"id": task_id, "version": version, "pid": pid, "ttl": 5000})


def _fulfill(corr: str, task_id: str, version: int, value: str) -> bytes:
    settle = _envelope(
        "promise.settle", corr + "s", {"id": task_id, "state": "resolved", "value": {"data": value}}
    )
    return _body("task.fulfill", corr, {"id": task_id, "version": version, "action": settle})


def _fence(corr: str, task_id: str, child: str, param: str, target: str, origin: str) -> bytes:
    tags = {
        "resonate:scope": "global",
        "resonate:target": f"poll://any@{target}",
        "resonate:branch": child,
        "resonate:parent": task_id,
        "resonate:origin": origin,
    }
    action = _create(corr + "c", child, param, tags)
    return _body("task.fence", corr, {"id": task_id, "version": 1, "action": action})


def _suspend(corr: str, task_id: str, awaited: str) -> bytes:
    callback = _envelope(
        "promise.register_callback", corr + "r", {"awaited": awaited, "awaiter": task_id}
    )
    return _body("task.suspend", corr, {"id": task_id, "version": 1, "actions": [callback]})


def await_chain(root: str) -> list[tuple[bytes, bool]]:
    """One await chain's requests in the order they reach the server, as the SDK words them.

    Each is (body, behind): ``behind`` for the gateway's listen, which leaves in one
    write with its create. b's suspend comes after c has fulfilled (its answer says the
    awaited promise settled), a's before b has, so a is resumed and b is not: 13 requests.
    """
    child, grandchild = f"{root}:1", f"{root}:1.1"
    create = _create(
        f"{root}-0",
        root,
        FUNCTIONS["foo"],
        {
            "resonate:origin": root,
            "resonate:branch": root,
            "resonate:parent": root,
            "resonate:scope": "global",
            "resonate:target": "poll://any@service-a",
            "asyncrpc:request": f"{root}-r",
        },
    )
    listen = _body(
        "promise.register_listener",
        f"{root}-0.listen",
        {"awaited": root, "address": "poll://uni@gateway/gw-1"},
    )
    return [
        (json.dumps(create, separators=(",", ":")).encode(), False),
        (listen, True),
        (_acquire(f"{root}-1", root, 0, "a-1"), False),
        (_fence(f"{root}-2", root, child, CHILD, "service-b", root), False),
        (_suspend(f"{root}-3", root, child), False),
        (_acquire(f"{root}-4", child, 0, "b-1"), False),
        (_fence(f"{root}-5", child, grandchild, GRANDCHILD, "service-c", root), False),
        (_acquire(f"{root}-6", grandchild, 0, "c-1"), False),
        (_fulfill(f"{root}-7", grandchild, 1, "MQ=="), False),
        (_suspend(f"{root}-8", child, grandchild), False),
        (_fulfill(f"{root}-9", child, 1, "Mg=="), False),
        (_acquire(f"{root}-10", root, 1, "a-1"), False),
        (_fulfill(f"{root}-11", root, 2, "Mw=="), False),
    ]


async def _open_streams(app: Any, frames: list[int]) -> list[asyncio.Task[None]]:
    """A poll stream per group, its frames counted and taken at once."""
    from asyncrpc.server.app import PUSH_EXTENSION

    def write(frame: bytes) -> bool:
        frames[0] += 1
        return True

    async def send(message: dict[str, Any]) -> None:
        return None

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    tasks = []
    for group, pid in GROUPS:
        scope = {
            "type": "http",
            "method": "GET",
            "path": f"/poll/{group}/{pid}",
            "headers": HEADERS[:1],
            "extensions": {PUSH_EXTENSION: {"write": write}},
        }
        tasks.append(asyncio.ensure_future(app(scope, receive, send)))
    await asyncio.sleep(0.01)
    return tasks


async def _round(flows: int, warmup: int, directory: str, memory: bool) -> dict[str, float]:
    from asyncrpc.runtime.browser_guard import BrowserGuard
    from asyncrpc.server.app import ServerApp
    from asyncrpc.server.engine import Engine
    from asyncrpc.server.store import Store

    path = ":memory:" if memory else os.path.join(directory, "server.db")
    engine = Engine(Store(path), beside_the_path_wait_s=0.0, suspend_hold_s=0.0)
    app = ServerApp(engine, None, BrowserGuard(loopback_only=True))
    frames = [0]
    streams = await _open_streams(app, frames)
    loop = asyncio.get_running_loop()
    statuses: list[int] = []

    async def one(body: bytes, behind: bool, waiting: list[asyncio.Future[None]]) -> None:
        done = loop.create_future()

        def respond(status: int, headers: Any, content: bytes) -> None:
            statuses.append(status)
            done.set_result(None)

        app.post(HEADERS, body, respond, behind)
        waiting.append(done)

    async def chain(requests: list[tuple[bytes, bool]]) -> None:
        waiting: list[asyncio.Future[None]] = []
        for body, behind in requests:
            await one(body, behind, waiting)
            if not behind:
                await asyncio.gather(*waiting)
                waiting.clear()
        await asyncio.gather(*waiting)

    tag = os.urandom(4).hex()
    for n in range(warmup):
        await chain(await_chain(f"w-{tag}-{n}"))
    measured = [await_chain(f"m-{tag}-{n}") for n in range(flows)]
    statuses.clear()
    frames[0] = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for requests in measured:
        await chain(requests)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for task in streams:
        task.cancel()
    requests = len(statuses)
    bad = [status for status in statuses if status >= 400]
    if bad or requests != flows * len(await_chain("x")):
        raise SystemExit(f"unexpected answers: {requests} answers, failures {bad[:5]}")
    return {
        "cpu_us_per_request": cpu / requests * 1e6,
        "wall_us_per_request": wall / requests * 1e6,
        "pushes_per_flow": frames[0] / flows,
        "requests_per_flow": requests / flows,
    }


def one_round(flows: int, warmup: int, memory: bool = False) -> dict[str, float]:
    """``flows`` chains after ``warmup`` ones, on a SQLite file (or in memory): the costs."""
    from asyncrpc.runtime import event_loop

    with tempfile.TemporaryDirectory(prefix="server-work-") as directory:
        return event_loop.run(_round(flows, warmup, directory, memory))


def _run_in(source: Path, flows: int, warmup: int) -> dict[str, float]:
    """One round in a fresh process on the code of ``source``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--round", str(flows), str(warmup)]
    env = {**os.environ, "PYTHONPATH": str(source)}
    out = subprocess.run(
        command, cwd=source, env=env, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _instructions_in(source: Path, flows: int) -> int:
    """User-space instructions of a round of ``flows`` chains on ``source`` (valgrind)."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--round",
        str(flows),
        str(WARMUP_UNDER_VALGRIND),
    ]
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=source, env=env, check=True, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def instructions_per_request(source: Path, flows: int) -> float:
    """Instructions per request: a round of ``flows`` more chains than a short one, less it
    (the start-up, the warm-up and the short round's chains cancel out)."""
    requests = flows * len(await_chain("x"))
    short = _instructions_in(source, SHORT_UNDER_VALGRIND)
    return (_instructions_in(source, SHORT_UNDER_VALGRIND + flows) - short) / requests


def compare(
    here: Path, against: Path, flows: int, warmup: int, rounds: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Rounds alternating between ``against`` and ``here``; ratios of here over against."""
    sides: dict[str, list[dict[str, float]]] = {"against": [], "here": []}
    for n in range(rounds):
        order = [("against", against), ("here", here)]
        for name, source in order if n % 2 == 0 else order[::-1]:
            sides[name].append(_run_in(source, flows, warmup))
        say(
            f"round {n + 1}: against {sides['against'][-1]['cpu_us_per_request']:.1f} "
            f"here {sides['here'][-1]['cpu_us_per_request']:.1f} µs CPU per request "
            f"(load {os.getloadavg()[0]:.2f})"
        )
    ratios = [
        h["cpu_us_per_request"] / a["cpu_us_per_request"]
        for a, h in zip(sides["against"], sides["here"], strict=True)
    ]
    return {
        "against_cpu_us": statistics.median(r["cpu_us_per_request"] for r in sides["against"]),
        "here_cpu_us": statistics.median(r["cpu_us_per_request"] for r in sides["here"]),
        "ratio": statistics.median(ratios),
        "ratios": [round(r, 3) for r in ratios],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--memory", action="store_true", help="the database in memory")
    parser.add_argument("--round", nargs=2, type=int, metavar=("FLOWS", "WARMUP"))
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind (both sides when --against)",
    )
    args = parser.parse_args(argv)
    if args.memory:
        os.environ[MEMORY_ENV] = "1"  # for the rounds this process starts
    if args.round is not None:
        print(json.dumps(one_round(*args.round, memory=bool(os.environ.get(MEMORY_ENV)))))
        return 0
    here = Path(__file__).resolve().parent.parent
    if args.instructions:
        sides = {"here": here} if args.against is None else {"against": args.against, "here": here}
        counted = {name: instructions_per_request(path, args.flows) for name, path in sides.items()}
        print(json.dumps({name: round(count) for name, count in counted.items()}))
        return 0
    if args.against is None:
        for _ in range(args.rounds):
            result = _run_in(here, args.flows, args.warmup)
            print(f"{result} (load {os.getloadavg()[0]:.2f})")
        return 0
    result = compare(here, args.against.resolve(), args.flows, args.warmup, args.rounds, print)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
