"""Part 7: recovery time: from a replacement's start until the interrupted flow completes.

Each scenario runs the await chain (gateway -> a -> b -> c) on its own
server (SQLite file) with worker leases of ``recovery_ttl`` seconds, has a
caller POST it (waiting up to two minutes), breaks one process at a chosen
moment, starts its replacement, and times, from that start:

- **recovery**: until the invocation's promise is resolved on the server
  (``promise.get``, polled every 10 ms);
- **ready**: until the replacement could take work (its ready line, or the
  server's ``/healthz``);
- **caller**: until the caller got ``{"message": 3}`` from the gateway.

Scenarios:

- ``executing``: node c is :mod:`benchmarks.stuck_worker`, which takes baz's
  task and keeps it; it is killed (-9) while holding the lease and a real
  node c starts at once. Its task returns to the group only when the dead
  worker's lease lapses (at most ``ttl`` after its last heartbeat, which
  beats every ``ttl/2``).
- ``suspended-child``: node b sleeps durably ``recovery_delay`` s, so foo
  (node a) is suspended awaiting bar; a is killed (-9) while suspended, and
  its replacement starts once bar has resolved (foo's task then waits,
  pending, for a member of service-a).
- ``suspended-sleep``: node c is killed (-9) during its durable sleep; its
  replacement starts once the sleep's timer has fired.
- ``server``: the server is killed (-9) while c sleeps durably, and
  restarted on the same port and database once the sleep is due. The
  workers and the gateway reconnect by themselves (backoff up to 2 s).
"""

from __future__ import annotations

import concurrent.futures
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from asyncrpc import topology
from benchmarks.bench import AWAIT_CHAIN, Bench
from benchmarks.processes import (
    BenchError,
    Topology,
    printed_ready,
    protocol,
    server_ready,
    start_module,
    start_node,
    start_server,
    start_topology,
    wait_for,
    wait_node,
)
from benchmarks.report import PartResult, Table, secs
from benchmarks.stuck_worker import HOLDING

FIRST, MIDDLE, LAST = AWAIT_CHAIN.nodes
#: Bound on every wait of a round.
STEP_TIMEOUT = 90.0


@dataclass(frozen=True)
class Round:
    recovery_s: float
    ready_s: float | None
    caller_s: float | None


# ── Observing the flow on the server ─────────────────────────────────────────


def promise_state(server_url: str, promise_id: str) -> str | None:
    """The promise's state, or None when the server does not answer (e.g. restarting)."""
    try:
        reply = protocol(server_url, "promise.get", id=promise_id)
    except (httpx.HTTPError, ValueError):
        return None
    return (reply.get("promise") or {}).get("state")


def task_state(server_url: str, task_id: str) -> str | None:
    try:
        reply = protocol(server_url, "task.get", id=task_id)
    except (httpx.HTTPError, ValueError):
        return None
    return (reply.get("task") or {}).get("state")


def step_id(server_url: str, root_id: str, node: str) -> str | None:
    """The id of the promise in ``root_id``'s call graph that runs on ``node``'s group."""
    group = topology.NODES[node].group
    found = protocol(server_url, "promise.search", tags={"resonate:origin": root_id}, limit=100)
    for record in found.get("promises", ()):
        if record.get("tags", {}).get("resonate:target", "").endswith(f"@{group}"):
            return record["id"]
    return None


def wait_task_state(server_url: str, root_id: str, node: str, state: str) -> str:
    """Wait until the task of ``node``'s step is in ``state``; return the step's id."""

    def check() -> str | None:
        found = step_id(server_url, root_id, node)
        return found if found and task_state(server_url, found) == state else None

    return wait_for(check, STEP_TIMEOUT, f"{root_id}'s step on node {node} to be {state}")


# ── The caller ───────────────────────────────────────────────────────────────


class Caller:
    """POSTs the await chain in a thread and notes when the answer came."""

    def __init__(self, pool: concurrent.futures.Executor, gateway_url: str, root_id: str) -> None:
        self.root_id = root_id
        self.answered_at: float | None = None
        self._future = pool.submit(self._call, gateway_url)

    def _call(self, gateway_url: str) -> httpx.Response:
        response = httpx.post(
            f"{gateway_url}{AWAIT_CHAIN.route}",
            params={"id": self.root_id, "wait": 120},
            timeout=130.0,
        )
        self.answered_at = time.monotonic()
        return response

    def check(self) -> None:
        response = self._future.result(timeout=STEP_TIMEOUT)
        if response.status_code != 200 or response.json() != {
            "message": AWAIT_CHAIN.expected_result
        }:
            raise BenchError(
                f"{self.root_id}: the caller got {response.status_code} {response.text[:200]}"
            )


def measure(
    server_url: str, root_id: str, started: float, ready: Callable[[], bool], caller: Caller
) -> Round:
    """Poll until the invocation resolved (noting when ``ready`` first held); check the caller."""
    ready_at: float | None = None

    def note_ready() -> None:
        nonlocal ready_at
        if ready_at is None and ready():
            ready_at = time.monotonic()

    def done() -> bool:
        note_ready()
        resolved = promise_state(server_url, root_id) == "resolved"
        note_ready()  # it may have become ready during that request
        return resolved

    wait_for(done, STEP_TIMEOUT, f"{root_id} to resolve")
    finished = time.monotonic()
    caller.check()
    return Round(
        recovery_s=finished - started,
        ready_s=None if ready_at is None else ready_at - started,
        caller_s=None if caller.answered_at is None else caller.answered_at - started,
    )


# ── Scenarios ────────────────────────────────────────────────────────────────


def ttl_args(bench: Bench) -> list[str]:
    return ["--ttl", f"{bench.sizes.recovery_ttl:g}"]


def delay_args(bench: Bench) -> list[str]:
    return ["--delay", f"{bench.sizes.recovery_delay:g}"]


def executing(bench: Bench, system: Topology, pool: concurrent.futures.Executor) -> list[Round]:
    rounds = []
    for i in range(bench.sizes.recovery_rounds):
        stuck = start_module(
            bench.procs,
            f"stuck-{LAST}",
            "stuck_worker",
            *(LAST, "--server-url", system.server_url, "--id", f"stuck-{i}", *ttl_args(bench)),
        )
        wait_node(stuck)
        root_id = f"rec-exec-{bench.tag}-{i}"
        caller = Caller(pool, system.gateway_url, root_id)
        wait_for(lambda s=stuck: HOLDING in s.output(), STEP_TIMEOUT, "the stuck worker to hold")
        stuck.kill(signal.SIGKILL)
        started = time.monotonic()
        replacement = start_node(
            bench.procs,
            LAST,
            system.server_url,
            *("--id", f"{LAST}-r{i}", *ttl_args(bench)),
        )
        rounds.append(
            measure(
                system.server_url, root_id, started, lambda r=replacement: printed_ready(r), caller
            )
        )
        replacement.kill(signal.SIGTERM)  # the next round's stuck worker must be alone in c
    return rounds


def suspended_child(
    bench: Bench, system: Topology, pool: concurrent.futures.Executor
) -> list[Round]:
    rounds = []
    victim = system.nodes[FIRST]
    for i in range(bench.sizes.recovery_rounds):
        root_id = f"rec-child-{bench.tag}-{i}"
        caller = Caller(pool, system.gateway_url, root_id)
        wait_for(
            lambda r=root_id: task_state(system.server_url, r) == "suspended",
            STEP_TIMEOUT,
            f"{root_id} (foo) to suspend awaiting bar",
        )
        victim.kill(signal.SIGKILL)
        middle = step_id(system.server_url, root_id, MIDDLE)
        wait_for(
            lambda m=middle: m is not None and promise_state(system.server_url, m) == "resolved",
            STEP_TIMEOUT,
            f"{root_id}'s bar to resolve",
        )
        started = time.monotonic()
        victim = start_node(
            bench.procs, FIRST, system.server_url, *("--id", f"{FIRST}-r{i}", *ttl_args(bench))
        )
        rounds.append(
            measure(system.server_url, root_id, started, lambda v=victim: printed_ready(v), caller)
        )
    return rounds


def suspended_sleep(
    bench: Bench, system: Topology, pool: concurrent.futures.Executor
) -> list[Round]:
    rounds = []
    victim = system.nodes[LAST]
    for i in range(bench.sizes.recovery_rounds):
        root_id = f"rec-sleep-{bench.tag}-{i}"
        caller = Caller(pool, system.gateway_url, root_id)
        last = wait_task_state(system.server_url, root_id, LAST, "suspended")
        victim.kill(signal.SIGKILL)
        wait_for(
            lambda t=last: task_state(system.server_url, t) == "pending",
            STEP_TIMEOUT,
            f"{root_id}'s durable sleep to end",
        )
        started = time.monotonic()
        victim = start_node(
            bench.procs,
            LAST,
            system.server_url,
            *("--id", f"{LAST}-r{i}", *ttl_args(bench), *delay_args(bench)),
        )
        rounds.append(
            measure(system.server_url, root_id, started, lambda v=victim: printed_ready(v), caller)
        )
    return rounds


def server_kill(bench: Bench, system: Topology, pool: concurrent.futures.Executor) -> list[Round]:
    rounds = []
    server = system.server
    for i in range(bench.sizes.recovery_rounds):
        root_id = f"rec-server-{bench.tag}-{i}"
        caller = Caller(pool, system.gateway_url, root_id)
        wait_task_state(server.url, root_id, LAST, "suspended")
        sleep_due = time.monotonic() + bench.sizes.recovery_delay
        server.process.kill(signal.SIGKILL)
        time.sleep(max(0.0, sleep_due - time.monotonic()) + 0.1)
        server = start_server(bench.procs, server.db, server.port)
        rounds.append(
            measure(
                server.url, root_id, server.started_at, lambda s=server: server_ready(s), caller
            )
        )
    system.server = server
    return rounds


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    nodes: tuple[str, ...]
    run: Callable[[Bench, Topology, concurrent.futures.Executor], list[Round]]
    delayed: str | None = None


SCENARIOS = (
    Scenario(
        "executing",
        f"worker {LAST} killed while executing (holding the lease)",
        (FIRST, MIDDLE),
        executing,
    ),
    Scenario(
        "suspended-child",
        f"worker {FIRST} killed while suspended awaiting its child",
        AWAIT_CHAIN.nodes,
        suspended_child,
        delayed=MIDDLE,
    ),
    Scenario(
        "suspended-sleep",
        f"worker {LAST} killed while suspended in a durable sleep",
        AWAIT_CHAIN.nodes,
        suspended_sleep,
        delayed=LAST,
    ),
    Scenario(
        "server",
        "server killed (-9) mid-flow, restarted on the same database",
        AWAIT_CHAIN.nodes,
        server_kill,
        delayed=LAST,
    ),
)


def run_scenario(bench: Bench, scenario: Scenario) -> list[Round]:
    node_args = {name: ttl_args(bench) for name in scenario.nodes}
    if scenario.delayed:
        node_args[scenario.delayed] = [*ttl_args(bench), *delay_args(bench)]
    db = bench.log_dir / f"recovery-{scenario.name}.db"
    first = len(bench.procs.started)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        system = start_topology(bench.procs, db, nodes=scenario.nodes, node_args=node_args)
        return scenario.run(bench, system, pool)
    finally:
        # Processes first: a caller still waiting then fails at once instead of blocking.
        for process in reversed(bench.procs.started[first:]):
            process.kill(signal.SIGTERM)
        pool.shutdown(wait=False, cancel_futures=True)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def run(bench: Bench) -> PartResult:
    result = PartResult("recovery")
    table = Table(
        f"Recovery (await chain, worker ttl {bench.sizes.recovery_ttl:g}s, "
        f"{bench.sizes.recovery_rounds} round(s); medians, s from the replacement's start)",
        ["scenario", "recovery s", "min", "max", "replacement ready s", "caller answered s"],
    )
    for scenario in SCENARIOS:
        bench.say(f"recovery: {scenario.what}")
        rounds = run_scenario(bench, scenario)
        recoveries = [r.recovery_s for r in rounds]
        data: dict[str, Any] = {
            "what": scenario.what,
            "rounds": [r.__dict__ for r in rounds],
            "recovery_s_median": median(list(recoveries)),
        }
        result.data[scenario.name] = data
        table.add(
            scenario.name,
            secs(median(list(recoveries))),
            secs(min(recoveries)),
            secs(max(recoveries)),
            secs(median([r.ready_s for r in rounds])),
            secs(median([r.caller_s for r in rounds])),
        )
    result.tables.append(table)
    result.notes.extend(
        [
            "recovery: replacement start -> the invocation's promise resolved on the server "
            "(polled every 10 ms); for 'server' the replacement is the restarted server",
            "executing: the dead worker's lease lapses up to ttl after its last heartbeat "
            "(every ttl/2); the replacement is started at the kill",
        ]
    )
    return result
