"""uvicorn's protocol around the server's fast lane, per request, with no socket and no engine.

    python -m benchmarks.lane_protocol [--requests N] [--rounds R] [--against DIR]
    python -m benchmarks.lane_protocol --instructions [--requests N] [--against DIR]

Requests worded as the SDK's request channel words them (``POST /`` with ``Host``,
``Authorization``, ``Content-Type`` and ``Content-Length``, as
:class:`~asyncrpc.network.lean_http.LeanHttpNetwork` sends them) are fed one at a
time to the protocol uvicorn runs for the server (:func:`asyncrpc.server.main.uvicorn_config`'s
``http``) through ``data_received``, on a stand-in transport that keeps what is
written. The lane behind it answers each at once with a fixed answer, so what is
measured is the protocol's own work per request: uvicorn's parser callbacks, the
keep-alive timer, the fast lane's bookkeeping and its write. The server's work on
a request is ``benchmarks.server_work``'s part.

A round runs ``--requests`` requests after a warm-up in a fresh process and
prints its CPU microseconds per request. With ``--against DIR`` (another checkout
of the project, say ``git archive`` of main unpacked) rounds alternate between
that code and this one, each pair starting with the other side; the result is
the median over the pairs of this side's time against the other's.
``--instructions`` counts user-space instructions per request under valgrind
instead (a round of ``--requests`` more requests than a short one, less it),
which the machine's load does not change.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WARMUP = 2000
#: Requests of the short round under valgrind, whose count is taken off the long one's.
SHORT_UNDER_VALGRIND = 200
BODY = (
    b'{"kind":"promise.get","head":{"corrId":"c1","version":"2025-01-15"},'
    b'"data":{"id":"foo.1764964800000.bar"}}'
)
REQUEST = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nAuthorization: Bearer lane-token\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(BODY), BODY)
)
ANSWER = (
    b'{"kind":"promise.get","head":{"corrId":"c1","status":200,"version":"2025-01-15"},'
    b'"data":{"promise":{"id":"foo.1764964800000.bar","state":"pending"}}}'
)


class Transport:
    """A connection's transport that keeps nothing but how many bytes were written.

    Written here rather than shared from ``harness/``: a round runs this file with
    another checkout's code first on the path, and that checkout's ``harness`` may
    not have it.
    """

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("sockname", "peername"):
            return ("127.0.0.1", 8001 if name == "sockname" else 50000)
        return default


def one_round(requests: int, warmup: int) -> float:
    """CPU microseconds per request of ``requests`` requests after ``warmup`` (this process)."""
    import asyncio

    import uvloop
    from uvicorn.server import ServerState

    from asyncrpc.server.app import JSON_HEADERS
    from asyncrpc.server.main import uvicorn_config

    class Lane:
        def post(self, headers: Any, body: bytes, respond: Any, *args: Any) -> None:
            respond(200, JSON_HEADERS, ANSWER)

        def closed(self, connection: object) -> None:
            pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("every request here takes the fast lane")

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    config = uvicorn_config(app, Lane())
    config.lifespan = "off"
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    feed = protocol.data_received
    for _ in range(warmup):
        feed(REQUEST)
    started = time.process_time()
    for _ in range(requests):
        feed(REQUEST)
    took = time.process_time() - started
    if transport.closing or transport.written < (warmup + requests) * len(ANSWER):
        raise SystemExit("the protocol did not answer every request on its connection")
    protocol.connection_lost(None)
    asyncio.set_event_loop(None)
    loop.close()
    return took / requests * 1e6


def _run_round(source: Path, requests: int, warmup: int, prefix: list[str]) -> str:
    command = [*prefix, sys.executable, str(Path(__file__).resolve()), "--round"]
    command += [str(requests), str(warmup)]
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=source, env=env, check=True, capture_output=True, text=True)
    return done.stdout if not prefix else done.stderr


def round_in(source: Path, requests: int) -> float:
    """CPU µs per request of a round on ``source``'s code, in a fresh process."""
    return float(json.loads(_run_round(source, requests, WARMUP, [])))


def _instructions_in(source: Path, requests: int) -> int:
    valgrind = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
    ]
    found = re.search(r"I\s+refs:\s+([\d,]+)", _run_round(source, requests, WARMUP, valgrind))
    if found is None:
        raise SystemExit("valgrind printed no instruction count")
    return int(found.group(1).replace(",", ""))


def instructions_per_request(source: Path, requests: int) -> float:
    """Instructions per request: a round of ``requests`` more than a short one, less it."""
    short = _instructions_in(source, SHORT_UNDER_VALGRIND)
    return (_instructions_in(source, SHORT_UNDER_VALGRIND + requests) - short) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--instructions", action="store_true", help="count under valgrind")
    parser.add_argument("--round", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.round is not None:
        print(json.dumps(one_round(*args.round)))
        return 0
    here = Path(__file__).resolve().parent.parent
    sides = {"here": here} if args.against is None else {"against": args.against, "here": here}
    if args.instructions:
        counted = {name: instructions_per_request(p, args.requests) for name, p in sides.items()}
        print(json.dumps({name: round(count) for name, count in counted.items()}))
        return 0
    taken: dict[str, list[float]] = {name: [] for name in sides}
    for turn in range(args.rounds):
        order = list(sides) if turn % 2 else list(reversed(sides))
        for name in order:
            taken[name].append(round_in(sides[name], args.requests))
    shown: dict[str, Any] = {
        name: [round(value, 2) for value in values] for name, values in taken.items()
    }
    if args.against is not None:
        ratios = [h / a for h, a in zip(taken["here"], taken["against"], strict=True)]
        shown["median here/against"] = round(statistics.median(ratios), 3)
    shown["load"] = os.getloadavg()[0]
    print(json.dumps(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
