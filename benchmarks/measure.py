"""How every part takes its numbers: latencies, the concurrent-callers driver, CPU and memory.

:func:`drive` is the one load generator: ``callers`` asyncio tasks share a
list of invocation ids, each calling ``call(id)`` back to back, timing each
call with :func:`time.perf_counter`. Invocations/s is completed calls over the
wall time of the whole run. A call that raises counts as an error, not as a
latency. Percentiles are :func:`statistics.quantiles` (inclusive method).
A :class:`CpuMeter` adds the CPU time (user + system, from /proc) each
process used during the run: on a shared, noisy machine CPU milliseconds per
invocation move far less than invocations per second. Memory is the resident
set size (VmRSS) of each process.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: One invocation under test; raises when it did not give the expected answer.
Call = Callable[[str], Awaitable[None]]


def percentile(values: Sequence[float], pct: int) -> float:
    """The ``pct``-th percentile (1..99) of ``values`` (inclusive method); needs one value."""
    if not 1 <= pct <= 99:
        raise ValueError(f"pct must be between 1 and 99, got {pct}")
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


@dataclass(frozen=True)
class Summary:
    """Latencies of a set of calls, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        if not seconds:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"))
        ms = [s * 1000 for s in seconds]
        return cls(
            count=len(ms),
            p50_ms=percentile(ms, 50),
            p99_ms=percentile(ms, 99),
            mean_ms=statistics.fmean(ms),
            max_ms=max(ms),
        )

    def to_json(self) -> dict[str, Any]:
        return {k: _rounded(v) for k, v in asdict(self).items()}


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


@dataclass(frozen=True)
class CpuMeter:
    """CPU time of a few processes, grouped by role (e.g. "server", "nodes", "driver")."""

    roles: Mapping[str, Sequence[int]]

    def read(self) -> dict[str, float]:
        return {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in self.roles.items()}

    @classmethod
    def driver_only(cls) -> CpuMeter:
        return cls({"driver": [os.getpid()]})


@dataclass(frozen=True)
class LoadResult:
    """What :func:`drive` measured."""

    callers: int
    invocations: int
    errors: int
    seconds: float
    latency: Summary
    first_error: str | None = None
    #: CPU seconds each role used during the run (when a meter was given).
    cpu_s: Mapping[str, float] = field(default_factory=dict)
    #: Invocations the product ran to the end inside the CPU's window that the load
    #: did not wait for (wrk's last request on each connection): they count in the CPU
    #: per invocation, not in the rate or the latencies.
    unanswered: int = 0

    @property
    def cores_used(self) -> float | None:
        """CPU seconds of every metered process per wall second: how much of the machine it got."""
        if not self.cpu_s or self.seconds <= 0:
            return None
        return sum(self.cpu_s.values()) / self.seconds

    def cpu_ms_per_invocation(self) -> dict[str, float]:
        done = max(self.invocations - self.errors + self.unanswered, 1)
        return {role: 1000 * used / done for role, used in self.cpu_s.items()}

    @property
    def per_second(self) -> float:
        done = self.invocations - self.errors
        return done / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "callers": self.callers,
            "invocations": self.invocations,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "invocations_per_s": round(self.per_second, 2),
            "latency": self.latency.to_json(),
        }
        if self.cpu_s:
            per = self.cpu_ms_per_invocation()
            body["cpu_ms_per_invocation"] = {role: round(v, 2) for role, v in per.items()}
            body["cores_used"] = round(self.cores_used or 0.0, 2)
        if self.unanswered:
            body["unanswered"] = self.unanswered
        if self.first_error:
            body["first_error"] = self.first_error
        return body


async def drive(
    call: Call,
    ids: Iterable[str],
    callers: int,
    meter: CpuMeter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LoadResult:
    """Run ``call`` once per id with ``callers`` concurrent callers; time everything.

    ``ids`` may be a generator (e.g. one that ends at a deadline). With a
    ``meter``, also the CPU time each of its roles used meanwhile.
    """
    if callers < 1:
        raise ValueError(f"callers must be >= 1, got {callers}")
    pending = iter(ids)
    latencies: list[float] = []
    errors: list[str] = []

    async def caller() -> None:
        for invocation_id in pending:
            began = clock()
            try:
                await call(invocation_id)
            except Exception as exc:
                errors.append(f"{invocation_id}: {type(exc).__name__}: {exc}")
                continue
            latencies.append(clock() - began)

    cpu_before = meter.read() if meter else {}
    began = clock()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = clock() - began
    cpu_after = meter.read() if meter else {}
    return LoadResult(
        callers=callers,
        invocations=len(latencies) + len(errors),
        errors=len(errors),
        seconds=elapsed,
        latency=Summary.of(latencies),
        first_error=errors[0] if errors else None,
        cpu_s={role: cpu_after[role] - cpu_before[role] for role in cpu_after},
    )


def _rounded(value: float | int) -> float | int | None:
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    return value


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS), 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def total_rss_bytes(pids: Iterable[int]) -> int:
    """RSS summed over ``pids``."""
    return sum(rss_bytes(pid) for pid in pids)
