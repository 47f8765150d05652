"""The ``recovery`` part: from a replacement's start until the interrupted invocation ends.

Each scenario runs the await chain (gateway -> a -> b -> c) on its own
server (SQLite file) with worker leases of ``recovery_ttl`` seconds, has a
caller POST it (waiting up to two minutes), breaks one process at a chosen
moment, starts its replacement, and times, from that start:

- **recovery**: until the invocation's promise is resolved on the server
  (read every 10 ms);
- **ready**: until the replacement could take work (its ready line, or the
  server's ``/healthz``).

The caller must then get ``{"message": 3}`` from the gateway. Scenarios:

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
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from asyncrpc.lesson import topology
from asyncrpc.protocol.errors import ServerRefused, ServerUnavailable
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.readers.server_reader import ServerReader
from benchmarks.bench import AWAIT_CHAIN, Bench, BenchError
from benchmarks.report import PartResult, Table, secs
from benchmarks.stuck_worker import HOLDING
from harness.processes import Process
from harness.system import System, printed_ready, start_node, start_system, wait_ready
from harness.waiting import wait_until

FIRST, MIDDLE, LAST = AWAIT_CHAIN.nodes
#: Bound on every wait of a round.
STEP_TIMEOUT = 90.0


@dataclass(frozen=True)
class Round:
    recovery_s: float
    ready_s: float | None


@dataclass(frozen=True)
class Replacement:
    """What replaced the broken process: when it started, and whether it is ready yet."""

    started: float
    ready: Callable[[], bool]

    @classmethod
    def of(cls, process: Process) -> Replacement:
        return cls(process.started_at, lambda: printed_ready(process))


# ── Reading the invocation on the server ─────────────────────────────────────


class Invocation:
    """One await chain in flight: its caller (a thread) and what the server says about it."""

    def __init__(self, pool: concurrent.futures.Executor, system: System, root_id: str) -> None:
        self.root_id = root_id
        self.server = ServerReader(system.server_url)
        self._answer = pool.submit(
            httpx.post,
            f"{system.gateway_url}{AWAIT_CHAIN.route}",
            params={"id": root_id, "wait": 120},
            timeout=130.0,
        )

    def promise_state(self, promise_id: str) -> PromiseState | None:
        """The promise's state, or None while the server does not answer (e.g. restarting)."""
        try:
            record = self.server.get(promise_id)
        except (ServerUnavailable, ServerRefused):
            return None
        return record.state if record else None

    def task_state(self, task_id: str) -> str | None:
        try:
            return self.server.task_state(task_id)
        except (ServerUnavailable, ServerRefused):
            return None

    def step_id(self, node: str) -> str | None:
        """The id of the promise in this invocation's call graph that runs on ``node``'s group."""
        group = topology.NODES[node].group
        found = self.server.search(tags={ORIGIN_TAG: self.root_id})
        return next((record.id for record in found if record.group == group), None)

    def wait_task(self, task_id: str | Callable[[], str | None], state: str) -> str:
        """Wait until the task (an id, or how to find it) is in ``state``; return its id."""

        def check() -> str | None:
            found = task_id() if callable(task_id) else task_id
            return found if found and self.task_state(found) == state else None

        return wait_until(check, STEP_TIMEOUT, f"{self.root_id}'s task to be {state}")

    def measure(self, replacement: Replacement) -> Round:
        """Poll until the invocation resolved, noting when the replacement became ready."""
        ready_at: float | None = None

        def done() -> bool:
            nonlocal ready_at
            resolved = self.promise_state(self.root_id) == PromiseState.RESOLVED
            if ready_at is None and replacement.ready():
                ready_at = time.monotonic()
            return resolved

        with self.server:
            wait_until(done, STEP_TIMEOUT, f"{self.root_id} to resolve")
        finished = time.monotonic()
        answer = self._answer.result(timeout=STEP_TIMEOUT)
        if answer.status_code != 200 or answer.json() != {"message": AWAIT_CHAIN.expected_result}:
            raise BenchError(f"{self.root_id}: the caller got {answer.status_code} {answer.text}")
        ready_s = None if ready_at is None else ready_at - replacement.started
        return Round(finished - replacement.started, ready_s)


# ── Scenarios: break a process under an invocation, start its replacement ────


def ttl_args(bench: Bench) -> list[str]:
    return ["--ttl", f"{bench.sizes.recovery_ttl:g}"]


def delay_args(bench: Bench) -> list[str]:
    return ["--delay", f"{bench.sizes.recovery_delay:g}"]


#: One round: (bench, system, the invocation, round number) -> the replacement, once started.
Breaker = Callable[[Bench, System, Invocation, int], Replacement]


def replace_node(bench: Bench, system: System, node: str, i: int, *extra: str) -> Replacement:
    """Start a new replica of ``node``, as the system's member of its group from now on."""
    process = start_node(bench.procs, node, system.server_url, "--id", f"{node}-r{i}", *extra)
    system.nodes[node] = process
    return Replacement.of(process)


def executing(bench: Bench, system: System, call: Invocation, i: int) -> Replacement:
    stuck = system.nodes[LAST]
    wait_until(lambda: HOLDING in stuck.output(), STEP_TIMEOUT, "the stuck worker to hold")
    stuck.kill(signal.SIGKILL)
    return replace_node(bench, system, LAST, i, *ttl_args(bench))


def suspended_child(bench: Bench, system: System, invocation: Invocation, i: int) -> Replacement:
    invocation.wait_task(invocation.root_id, "suspended")
    system.nodes[FIRST].kill(signal.SIGKILL)
    middle = invocation.step_id(MIDDLE)
    wait_until(
        lambda: middle is not None and invocation.promise_state(middle) == PromiseState.RESOLVED,
        STEP_TIMEOUT,
        f"{invocation.root_id}'s bar to resolve",
    )
    return replace_node(bench, system, FIRST, i, *ttl_args(bench))


def suspended_sleep(bench: Bench, system: System, invocation: Invocation, i: int) -> Replacement:
    last = invocation.wait_task(lambda: invocation.step_id(LAST), "suspended")
    system.nodes[LAST].kill(signal.SIGKILL)
    invocation.wait_task(last, "pending")  # the durable sleep's timer fired
    return replace_node(bench, system, LAST, i, *ttl_args(bench), *delay_args(bench))


def server_kill(bench: Bench, system: System, invocation: Invocation, i: int) -> Replacement:
    invocation.wait_task(lambda: invocation.step_id(LAST), "suspended")
    sleep_due = time.monotonic() + bench.sizes.recovery_delay
    system.server.process.kill(signal.SIGKILL)
    time.sleep(max(0.0, sleep_due - time.monotonic()) + 0.1)
    system.server = bench.procs.spawn_server(system.server.db, system.server.port)
    return Replacement(system.server.process.started_at, system.server.ready)


def start_stuck_worker(bench: Bench, system: System, i: int) -> None:
    """Node c as :mod:`benchmarks.stuck_worker`, ready, for the next ``executing`` round."""
    args = [LAST, "--server-url", system.server_url, "--id", f"stuck-{i}", *ttl_args(bench)]
    system.nodes[LAST] = bench.start_program("stuck_worker", *args)
    wait_ready(system.nodes[LAST])


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    breaks: Breaker
    #: The node that sleeps durably ``recovery_delay`` s, if any.
    delayed: str | None = None
    #: Run before each round (with no node c of its own: the stuck worker stands in).
    prepare: Callable[[Bench, System, int], None] | None = None


SCENARIOS = (
    Scenario(
        "executing",
        f"worker {LAST} killed while executing (holding the lease)",
        executing,
        prepare=start_stuck_worker,
    ),
    Scenario(
        "suspended-child",
        f"worker {FIRST} killed while suspended awaiting its child",
        suspended_child,
        delayed=MIDDLE,
    ),
    Scenario(
        "suspended-sleep",
        f"worker {LAST} killed while suspended in a durable sleep",
        suspended_sleep,
        delayed=LAST,
    ),
    Scenario(
        "server",
        "server killed (-9) mid-invocation, restarted on the same database",
        server_kill,
        delayed=LAST,
    ),
)


def run_scenario(bench: Bench, scenario: Scenario) -> list[Round]:
    nodes = AWAIT_CHAIN.nodes if scenario.prepare is None else (FIRST, MIDDLE)
    node_args = {name: ttl_args(bench) for name in nodes}
    if scenario.delayed:
        node_args[scenario.delayed] = [*ttl_args(bench), *delay_args(bench)]
    db = bench.log_dir / f"recovery-{scenario.name}.db"
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    rounds = []
    try:
        # Processes stop first: a caller still waiting then fails at once instead of blocking.
        with bench.procs.scope():
            system = start_system(bench.procs, db, nodes=nodes, node_args=node_args)
            for i in range(bench.sizes.recovery_rounds):
                if scenario.prepare is not None:
                    scenario.prepare(bench, system, i)
                invocation = Invocation(pool, system, f"rec-{scenario.name}-{bench.tag}-{i}")
                rounds.append(invocation.measure(scenario.breaks(bench, system, invocation, i)))
                if scenario.prepare is not None:
                    system.nodes[LAST].stop()  # the next stuck worker must be alone in c
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return rounds


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def run(bench: Bench) -> PartResult:
    result = PartResult("recovery")
    table = Table(
        f"Recovery (await chain, worker ttl {bench.sizes.recovery_ttl:g}s, "
        f"{bench.sizes.recovery_rounds} round(s); medians, s from the replacement's start)",
        ["scenario", "recovery s", "min", "max", "replacement ready s"],
    )
    for scenario in SCENARIOS:
        bench.say(f"recovery: {scenario.what}")
        rounds = run_scenario(bench, scenario)
        recoveries: list[float | None] = [r.recovery_s for r in rounds]
        data: dict[str, Any] = {
            "what": scenario.what,
            "rounds": [asdict(r) for r in rounds],
            "recovery_s_median": median(recoveries),
        }
        result.data[scenario.name] = data
        table.add(
            scenario.name,
            secs(median(recoveries)),
            secs(min(r.recovery_s for r in rounds)),
            secs(max(r.recovery_s for r in rounds)),
            secs(median([r.ready_s for r in rounds])),
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
