"""The HTTP load generator for the ratios: wrk, which leaves the cores to what it measures.

A load generator in Python (aiohttp, :mod:`benchmarks.load_client`) spends
about as much CPU per request as the gateway it drives, on the same two
cores. wrk (C, one thread, ``apt-get install wrk``) spends a small fraction
of that, so a contender measured through it keeps the cores, as one measured
through an SDK client in this process does not. A load runs for a number of
seconds (``-d``), which is what its rate is counted over; :data:`SCRIPT`
makes every request a distinct invocation (``?id=PREFIX-N``), checks each
answer, and stops sending at a cap on the count (a load that reaches it is
an error: its rate would count time it spent idle). Loopback only: the URL
is the contender's, on 127.0.0.1. Without wrk the loads fall back to
:func:`benchmarks.measure.drive` with the aiohttp client, and say so.

When wrk's time is up, each of its connections leaves the request it is
waiting on unanswered, and the product runs those invocations to the end all
the same: a load's CPU is read once they are done (:data:`SETTLE_S` after wrk
exits) and divided over the answered invocations *and* those (one per
connection, :attr:`~benchmarks.measure.LoadResult.unanswered`). Counting the
answered ones alone charges a load with 16 connections for about 1.5 % more
flows than it is credited with, and a load that starts right after another
with the previous one's last flows (docs/performance.md, "The gateway's cost"),
where an SDK client's load (:func:`~benchmarks.measure.drive`) waits for every
call it makes.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.bench import AWAIT_CHAIN, BenchError
from benchmarks.measure import CpuMeter, LoadResult, Summary

SCRIPT = Path(__file__).with_name("wrk_load.lua")
#: The longest one load may run.
MAX_SECONDS = 120
#: Seconds for the invocations a load leaves in flight to finish before its CPU is read.
SETTLE_S = 0.3
EXPECTED_BODY = json.dumps({"message": AWAIT_CHAIN.expected_result}, separators=(",", ":"))


def available() -> str | None:
    """wrk's path, when it is installed."""
    return shutil.which("wrk")


def load(
    url: str,
    prefix: str,
    seconds: int,
    cap: int,
    callers: int,
    meter: CpuMeter | None = None,
    settle: float = SETTLE_S,
) -> LoadResult:
    """POST the await chain for ``seconds`` with ``callers`` connections; what it measured.

    At most ``cap`` answers are taken. The requests in flight at the end are not
    answered, but their invocations finish on their own: the CPU is read once they
    have (``settle`` seconds after wrk exits) and counted over them too.
    """
    wrk = available()
    if wrk is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    if not url.startswith("http://127.0.0.1:"):
        raise BenchError(f"wrk loads loopback only, not {url}")
    if not 1 <= seconds <= MAX_SECONDS:
        raise BenchError(f"a wrk load runs 1 to {MAX_SECONDS} s, not {seconds}")
    command = [wrk, "-t1", f"-c{callers}", f"-d{seconds}s", "--timeout", "60s"]
    command += ["-s", str(SCRIPT), url, "--", AWAIT_CHAIN.route, prefix, str(cap), EXPECTED_BODY]
    cpu_before = meter.read() if meter else {}
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=MAX_SECONDS + 30)
    elapsed = time.perf_counter() - began
    time.sleep(settle)  # the invocations left in flight finish inside the CPU's window
    cpu_after = meter.read() if meter else {}
    last = done.stdout.strip().splitlines()[-1:] or [""]
    try:
        numbers = json.loads(last[0])
    except ValueError:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr or done.stdout}") from None
    if numbers["answered"] >= cap:
        raise BenchError(f"wrk reached its cap of {cap} answers before {seconds} s were up")
    cpu_s = {role: cpu_after[role] - cpu_before[role] for role in cpu_after}
    return measured(numbers, callers, elapsed, cpu_s)


def measured(
    numbers: dict[str, Any], callers: int, elapsed: float, cpu_s: dict[str, float]
) -> LoadResult:
    """What wrk's summary line (:data:`SCRIPT`'s ``done``) says, as a :class:`LoadResult`.

    Each of the ``callers`` connections leaves one request unanswered when wrk's
    time is up; its invocation is work the product did (:attr:`LoadResult.unanswered`).
    """
    answered, lost = numbers["answered"], numbers["socket_errors"]
    bad = numbers["bad"] + lost
    seconds = numbers["duration_us"] / 1e6 or elapsed
    ms = 1000.0
    latency = Summary(
        count=answered - numbers["bad"],
        p50_ms=numbers["p50_us"] / ms,
        p99_ms=numbers["p99_us"] / ms,
        mean_ms=numbers["mean_us"] / ms if math.isfinite(numbers["mean_us"]) else float("nan"),
        max_ms=numbers["max_us"] / ms,
    )
    return LoadResult(
        callers=callers,
        invocations=answered + lost,
        errors=bad,
        seconds=seconds,
        latency=latency,
        first_error=f"{bad} wrong answers or socket errors" if bad else None,
        cpu_s=cpu_s,
        unanswered=callers,
    )
