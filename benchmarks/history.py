"""The ``history`` part: what stored history costs the embedded server, against a fresh one.

For each size (0, the fresh server, then ``history_promises``) a SQLite
file is seeded with that many settled promises, directly through the store's
bulk path (:meth:`Store.import_settled`: settled await chains, a root and two
steps each, with the SDK's tags), then measured in this run:

- **start to ready**: ``asyncrpc server`` from its start to ``/healthz`` = 200;
- **restart after kill -9**: the same after ``kill -9`` (log replay included),
  then a check that nothing is lost: the writes answered just before the kill
  and the oldest and newest seeded chains;
- **reads**: ``promise.get`` of an old promise and ``promise.search`` by its
  origin tag (its call graph), and the first page (100) of a search by the
  entry group's target tag (what the dashboard asks for), medians;
- **await chain**: a short load (16 callers) through the gateway and the nine
  nodes on that database, and the server's RSS after it;
- **up --detach**: the whole topology's start-up with that database as its
  run directory's ``server.db``;
- the await chain and ``up --detach`` run in ``up_rounds`` rounds, the sizes
  interleaved (medians), so a busy minute of a shared machine does not land on
  one size;
- **the dashboard live**: on that system, how soon the dashboard's feed and
  page show `asyncrpc kill b`, and `asyncrpc start b`, after the command
  returns (:mod:`benchmarks.kill_live`), over ``kill_rounds`` rounds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from resonate.connections.sse import resolve_target

from asyncrpc.protocol.tags import ORIGIN_TAG, TARGET_TAG
from asyncrpc.runtime import config
from asyncrpc.server.main import default_db_path
from benchmarks import kill_live
from benchmarks.bench import AWAIT_CHAIN, Bench, BenchError
from benchmarks.load_client import envelope
from benchmarks.loads import http_level, meter
from benchmarks.report import PartResult, Table, rate, secs
from benchmarks.startup import up_detached
from harness.history import seed
from harness.launched import Launched
from harness.system import start_system

#: Callers of the short await-chain load.
CALLERS = 16
#: Repetitions of each read.
READS = 30


def median_s(ask: Any, times: int = READS) -> float:
    durations = []
    for _ in range(times):
        began = time.perf_counter()
        ask()
        durations.append(time.perf_counter() - began)
    return statistics.median(durations)


def post(client: httpx.Client, kind: str, **data: Any) -> dict[str, Any]:
    answer = client.post("/", json=envelope(kind, **data))
    if answer.status_code != 200:
        raise BenchError(f"{kind} -> {answer.status_code}: {answer.text[:200]}")
    body: dict[str, Any] = answer.json()["data"]
    return body


def reads(url: str, prefix: str, count: int) -> dict[str, float | None]:
    """Medians (s) of reading an old promise, its call graph, and the dashboard's first page."""
    if count < 3:
        return {"get_s": None, "call_graph_s": None, "target_page_s": None}
    old = f"{prefix}-{(count // 3) // 2:08d}"
    target = resolve_target(AWAIT_CHAIN.entry_group)
    with httpx.Client(base_url=url, timeout=60) as client:
        if post(client, "promise.get", id=f"{old}.2")["promise"]["state"] != "resolved":
            raise BenchError(f"{old}.2 is not resolved on the server")
        graph = post(client, "promise.search", tags={ORIGIN_TAG: old})["promises"]
        if len(graph) != 3:
            raise BenchError(f"the call graph of {old} has {len(graph)} promises, not 3")
        return {
            "get_s": median_s(lambda: post(client, "promise.get", id=f"{old}.2")),
            "call_graph_s": median_s(
                lambda: post(client, "promise.search", tags={ORIGIN_TAG: old})
            ),
            "target_page_s": median_s(
                lambda: post(client, "promise.search", tags={TARGET_TAG: target}, limit=100)
            ),
        }


#: Promises written (and answered) just before the ``kill -9``: half left pending, half settled.
WRITES = 20


def acknowledged_writes(url: str, prefix: str) -> dict[str, str]:
    """Create ``WRITES`` promises and settle every other one; each write is answered, so each
    must outlive a ``kill -9``. Returns each id with the state the server answered."""
    states: dict[str, str] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for n in range(WRITES):
            id = f"{prefix}-kill9-{n}"
            post(client, "promise.create", id=id, timeoutAt=2**53, param={}, tags={})
            states[id] = "pending"
            if n % 2:
                settled = post(client, "promise.settle", id=id, state="resolved", value={})
                states[id] = settled["promise"]["state"]
    return states


def nothing_lost(url: str, prefix: str, count: int, written: dict[str, str]) -> None:
    """After the restart: every acknowledged write in the state it was answered with, and the
    first and last seeded chains still stored, or a :class:`BenchError` naming what is lost."""
    seeded = [f"{prefix}-{0:08d}", f"{prefix}-{count // 3 - 1:08d}"] if count >= 3 else []
    with httpx.Client(base_url=url, timeout=60) as client:
        for id, state in written.items():
            found = post(client, "promise.get", id=id)["promise"]["state"]
            if found != state:
                raise BenchError(f"after kill -9, {id} is {found}, answered {state} before it")
        for root in seeded:
            if post(client, "promise.get", id=f"{root}.2")["promise"]["state"] != "resolved":
                raise BenchError(f"after kill -9, the seeded {root}.2 is not resolved")


def rss_of(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def server_alone(bench: Bench, db: Path, prefix: str, count: int) -> dict[str, Any]:
    """Start, read, kill -9, restart: the server alone on ``db``."""
    with bench.procs.scope():
        server = bench.procs.spawn_server(db)
        ready_s = server.wait()
        idle_rss = rss_of(server.process.pid)
        measured = reads(server.url, prefix, count)
        written = acknowledged_writes(server.url, prefix)
        server.process.kill(signal.SIGKILL)
        server = bench.procs.spawn_server(db, server.port)
        restart_s = server.wait()
        nothing_lost(server.url, prefix, count, written)
        server.process.stop()
    return {"ready_s": ready_s, "restart_s": restart_s, "idle_rss_bytes": idle_rss, **measured}


def await_chain(bench: Bench, db: Path, label: str) -> dict[str, Any]:
    """A short await-chain load through the topology on ``db``; the server's RSS after it."""
    load = max(bench.sizes.history_load, CALLERS)
    with bench.procs.scope():
        system = start_system(bench.procs, db)
        level = http_level(
            system.gateway_url, meter(system, system.gateway), bench.sizes.load_seconds
        )
        measured = asyncio.run(
            level(bench.ids(f"hl{label}", load), bench.ids(f"hw{label}", CALLERS), CALLERS)
        )
        if measured.errors:
            raise BenchError(f"{measured.errors} await chains failed: {measured.first_error}")
        rss = rss_of(system.server.process.pid)
        system.stop()
    return {"invocations_per_s": measured.per_second, "loaded_rss_bytes": rss}


def up_once(bench: Bench, run_dir: Path, label: str, live: bool) -> dict[str, Any]:
    """`asyncrpc up --detach` in ``run_dir``, its seconds; with ``live``, then how soon its
    dashboard shows `asyncrpc kill b` and `asyncrpc start b` (:mod:`benchmarks.kill_live`)."""
    launched = Launched(run_dir, {**bench.procs.base_env, config.ENV_RUN_DIR: str(run_dir)})
    try:
        try:
            env, elapsed = up_detached(bench, run_dir)
        except BenchError as exc:  # a free port taken by another process meanwhile: once more
            if "already in use" not in str(exc):
                raise
            launched.stop()
            env, elapsed = up_detached(bench, run_dir)
        launched.remember()
        measured: dict[str, Any] = {"up_detach_s": elapsed}
        if live:
            bench.say(f"history: {label} stored: the dashboard shows kill b and start b")
            measured["dashboard"] = kill_live.measure(env, bench.sizes.kill_rounds)
    finally:
        launched.remember()
        launched.stop()
    return measured


def interleaved(bench: Bench, dbs: dict[int, Path]) -> dict[int, dict[str, Any]]:
    """On each size's database, the await chain's load and then `up --detach`, the sizes
    interleaved over ``up_rounds`` rounds (each round starting with the next size, so a busy
    minute does not land on one size): medians per size, and the dashboard timings of the
    last round."""
    run_dirs: dict[int, Path] = {}
    for count, db in dbs.items():
        run_dirs[count] = bench.log_dir / f"history-up-{count}"
        run_dirs[count].mkdir(parents=True, exist_ok=True)
        os.replace(db, default_db_path(run_dirs[count]))
    counts = list(run_dirs)
    samples: dict[int, dict[str, list[float]]] = {count: {} for count in counts}
    results: dict[int, dict[str, Any]] = {}
    rounds = max(1, bench.sizes.up_rounds)
    for round_ in range(rounds):
        shift = round_ % len(counts)
        for count in counts[shift:] + counts[:shift]:
            run_dir, label = run_dirs[count], f"{count}r{round_}"
            bench.say(f"history: {count:,} stored: await chain load, round {round_ + 1}")
            measured = await_chain(bench, default_db_path(run_dir), label)
            bench.say(f"history: {count:,} stored: up --detach, round {round_ + 1}")
            measured.update(up_once(bench, run_dir, f"{count}", round_ == rounds - 1))
            for key in ("invocations_per_s", "loaded_rss_bytes", "up_detach_s"):
                samples[count].setdefault(key, []).append(measured[key])
            results[count] = measured
    for count in counts:
        for key, values in samples[count].items():
            results[count][key] = statistics.median(values)
        results[count]["up_detach_all_s"] = samples[count]["up_detach_s"]
        results[count]["invocations_per_s_all"] = samples[count]["invocations_per_s"]
    return results


def one_size(bench: Bench, count: int) -> tuple[dict[str, Any], Path]:
    """Seed ``count`` settled promises, then the server alone on them."""
    label = f"{count}"
    db = bench.log_dir / f"history-{label}.db"
    prefix = f"old-{bench.tag}"
    bench.say(f"history: seeding {count:,} settled promises")
    seeded_s = seed(db, count, prefix)
    bench.say(f"history: {count:,} stored: server alone")
    data: dict[str, Any] = {"stored": count, "seed_s": round(seeded_s, 2)}
    data.update(server_alone(bench, db, prefix, count))
    return data, db


def ratio(value: float | None, fresh: float | None) -> str:
    return "-" if not value or not fresh else f"{value / fresh:.2f}x"


def mib(value: int) -> str:
    return f"{value / 2**20:.0f}"


def ms_or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


def shown(times: dict[str, Any]) -> str:
    """Median/worst, in ms."""
    if times["median"] is None:
        return "-"
    return f"{times['median'] * 1000:.0f}/{times['worst'] * 1000:.0f}"


def run(bench: Bench) -> PartResult:
    result = PartResult("history")
    sizes = (0, *sorted(bench.sizes.history_promises))
    seeded = [one_size(bench, count) for count in sizes]
    started = interleaved(bench, {row["stored"]: db for row, db in seeded})
    rows = [{**row, **started[row["stored"]]} for row, _ in seeded]
    result.data["sizes"] = rows
    fresh = rows[0]
    table = Table(
        "History: the embedded server with N settled promises stored, against a fresh one",
        [
            "stored",
            "ready s",
            "restart -9 s",
            "up --detach s",
            "RSS MiB idle/loaded",
            "get ms",
            "graph ms",
            "page ms",
            "await chain/s",
        ],
    )
    for row in rows:
        table.add(
            f"{row['stored']:,}",
            secs(row["ready_s"]),
            secs(row["restart_s"]),
            secs(row["up_detach_s"]),
            f"{mib(row['idle_rss_bytes'])}/{mib(row['loaded_rss_bytes'])}",
            ms_or_dash(row["get_s"]),
            ms_or_dash(row["call_graph_s"]),
            ms_or_dash(row["target_page_s"]),
            rate(row["invocations_per_s"]),
        )
    ratios = Table(
        "History: ratios to the fresh server",
        ["stored", "up --detach", "loaded RSS", "await chain/s"],
    )
    for row in rows[1:]:
        ratios.add(
            f"{row['stored']:,}",
            ratio(row["up_detach_s"], fresh["up_detach_s"]),
            ratio(row["loaded_rss_bytes"], fresh["loaded_rss_bytes"]),
            ratio(row["invocations_per_s"], fresh["invocations_per_s"]),
        )
    live = Table(
        "History: how soon the dashboard shows `asyncrpc kill b` and `asyncrpc start b` "
        "(ms after the command returns, median/worst)",
        ["stored", "kill: feed", "kill: page", "start: feed", "start: page", "kill cmd s"],
    )
    for row in rows:
        kill, start = row["dashboard"]["kill"], row["dashboard"]["start"]
        live.add(
            f"{row['stored']:,}",
            shown(kill["feed_s"]),
            shown(kill["page_s"]),
            shown(start["feed_s"]),
            shown(start["page_s"]),
            secs(kill["command_s"]["median"]),
        )
    result.tables.extend([table, ratios, live])
    result.notes.append(
        "seeded through the store's bulk path (no HTTP); reads are medians of "
        f"{READS}; the await chain load ({max(bench.sizes.history_load, CALLERS)} "
        f"invocations at {CALLERS} callers through the gateway; RSS loaded is the server's "
        f"after that load) and up --detach are medians of {bench.sizes.up_rounds} rounds, the "
        "sizes interleaved"
    )
    result.notes.append(
        f"the dashboard: {bench.sizes.kill_rounds} rounds of `asyncrpc kill b` then "
        "`asyncrpc start b` on the last round's `up --detach` system, timed from the "
        "command's return to the first status event of /api/events, and to the page's row in "
        "Debian's chromium, that shows b.1 killed (running); 0 when it showed before the "
        "command's process had exited"
    )
    return result
