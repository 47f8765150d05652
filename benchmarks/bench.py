"""What every part gets: the sizes to run at, where logs go, and the shared topology.

The round-trip part and the await-chain loads measure the same running
system (server + gateway + the nine nodes, each its own process, the server
on a SQLite file as `asyncrpc server` runs by default), started once, on
first use, by :meth:`Bench.topology`. Parts that kill or restart processes
(recovery, start-up, server) start their own.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from rich.console import Console

from asyncrpc.lesson import topology
from harness.processes import Process, Processes
from harness.system import System, start_system

#: The repository root: benchmark-only programs run as ``python -m benchmarks.<module>`` from it.
ROOT = Path(__file__).resolve().parent.parent
#: The flow every load runs.
AWAIT_CHAIN = topology.FLOWS["await-chain"]


class BenchError(RuntimeError):
    """A benchmark could not run (a wait timed out, an answer was wrong)."""


@dataclass(frozen=True)
class Sizes:
    """How much each part does. :meth:`quick` is a smoke run of the same code."""

    #: Sequential invocations per flow (round trip).
    roundtrip: int = 200
    #: Invocations per concurrency level, at least ``per_caller`` per caller.
    throughput: int = 400
    per_caller: int = 8
    callers: tuple[int, ...] = (1, 16, 64)
    #: The ratios' contenders, interleaved: rounds, and invocations per contender per round.
    compare_rounds: int = 5
    compare: int = 300
    #: Invocations one at a time per round (the sequential latency).
    sequential: int = 100
    #: Seconds of each HTTP load when wrk drives it (it runs for a time, not a count).
    load_seconds: int = 5
    #: promise.create + promise.settle pairs (server alone).
    server_pairs: int = 2000
    #: Stored promises to restart the server with.
    server_promises: tuple[int, ...] = (10_000, 100_000)
    #: Repetitions of each recovery scenario and of the start-up measurement.
    recovery_rounds: int = 3
    startup_rounds: int = 2
    #: A git revision whose `up --detach` the start-up part times against this code's, in
    #: ``startup_ab_rounds`` pairs of rounds, interleaved (None: not compared).
    startup_base: str | None = None
    startup_ab_rounds: int = 6
    #: Task lease (s) of the worker nodes in the recovery scenarios.
    recovery_ttl: float = 2.0
    #: Crash-demo delay (s, a durable sleep) used to catch a flow mid-way.
    recovery_delay: float = 1.0
    #: Soak: seconds of flows, seconds between samples, and the server's --retain. Six minutes
    #: outlast the five that HTTP clients give one request by default (aiohttp's total timeout),
    #: so a long-lived stream that such a limit ends shows up as failed flows.
    soak_seconds: float = 360.0
    soak_sample_s: float = 15.0
    soak_retain: str = "20s"
    #: History: settled promises stored before measuring (against a fresh server), and the
    #: await chains of its short load.
    history_promises: tuple[int, ...] = (100_000, 1_000_000)
    history_load: int = 300
    #: Kills and starts of b timed on the dashboard of each history system.
    kill_rounds: int = 5
    #: Rounds of `up --detach` on every history size, interleaved (the median is reported).
    up_rounds: int = 3
    #: resonate-pg part: rounds, invocations per contender per round, promises stored in the
    #: history system, seconds of no traffic measured, and the nodes each system runs.
    pg_rounds: int = 3
    pg_invocations: int = 240
    pg_seed: int = 30_000
    pg_idle_s: float = 10.0
    pg_nodes: tuple[str, ...] = tuple(topology.NODES)
    #: The resonate-pg part's systems to run (``fresh``, ``30k``, ``b2``, ``plain``,
    #: ``embedded``); none named: all of them.
    pg_systems: tuple[str, ...] = ()

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            roundtrip=20,
            throughput=48,
            per_caller=2,
            compare_rounds=1,
            compare=24,
            sequential=10,
            load_seconds=1,
            server_pairs=300,
            server_promises=(2_000,),
            recovery_rounds=1,
            startup_rounds=1,
            soak_seconds=12.0,
            soak_sample_s=3.0,
            soak_retain="5s",
            history_promises=(3_000,),
            history_load=32,
            kill_rounds=2,
            up_rounds=1,
            pg_rounds=1,
            pg_invocations=24,
            pg_seed=3_000,
            pg_idle_s=2.0,
            pg_nodes=("a", "b", "c"),
        )

    def with_(self, **changes: object) -> Sizes:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    def invocations(self, minimum: int, callers: int) -> int:
        """At least ``minimum`` invocations, and at least ``per_caller`` for each caller."""
        return max(minimum, callers * self.per_caller)


@dataclass
class Bench:
    """The run's context, handed to every part."""

    sizes: Sizes
    procs: Processes
    log_dir: Path
    console: Console
    #: Makes invocation ids unique to this run.
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    _topology: System | None = None

    def say(self, message: str) -> None:
        """A progress line, timestamped."""
        stamp = datetime.now().strftime("%H:%M:%S")
        self.console.print(f"{stamp} {message}", style="dim", markup=False, highlight=False)

    def topology(self) -> System:
        """The shared system (started on first use)."""
        if self._topology is None:
            self.say("starting server + gateway + 9 nodes for the shared topology")
            self._topology = start_system(self.procs, self.log_dir / "shared.db")
            self.say(f"shared topology ready in {self._topology.ready_after:.1f}s")
        return self._topology

    def stop_topology(self) -> None:
        """Stop the shared system (so later parts have the cores to themselves)."""
        if self._topology is not None:
            self._topology.stop()
            self._topology = None

    def start_program(self, module: str, *args: str, name: str | None = None) -> Process:
        """``python -m benchmarks.<module> ARGS``, a benchmark-only program (not waited for)."""
        command = [sys.executable, "-m", f"benchmarks.{module}", *args]
        return self.procs.start(name or module, command, env={"PYTHONPATH": str(ROOT)})

    def ids(self, prefix: str, count: int) -> list[str]:
        """``count`` invocation ids unique to this run."""
        return [f"{prefix}-{self.tag}-{i}" for i in range(count)]
