"""resonate-pg as its history grows and with idle replicas, beside the embedded server, interleaved.

Three resonate-pg systems are up at once, each its own `postgres` node
(`asyncrpc postgres`: Postgres 18, resonate.sql and asyncrpc's step) with
the gateway and the nine nodes joined through ``postgresql://``, and the
shared topology on `asyncrpc server`:

- ``fresh``: its settled promises are deleted (``resonate.gc``) before each
  round, so every round starts on an empty history;
- ``30k``: :data:`SEED` settled promises (INSERTed as await chains: a root,
  its step and the step's step, each with its fulfilled task) before the first
  round, and whatever the rounds add;
- ``b2``: as ``fresh``, with two replicas of b (``--scale b=2``);
- ``plain``: as ``fresh``, without the schema step's ``asyncrpc.dequeue_acquire``
  (dropped before its nodes start), so its nodes claim their execute messages
  with ``dequeue_execute`` and acquire each task with a request of its own:
  ``fresh`` over ``plain``, round by round, is what taking the lease in the
  dequeue changes;
- ``embedded``: the shared topology, so the same run has the embedded
  server's figures.

First, with no traffic, the CPU each resonate-pg system uses for
``pg_idle_s`` seconds: its Postgres (the postmaster and every backend) and
all of its processes. Then rounds of the await chain at 16 callers, every
contender once per round, each round starting with the next one, as in
:mod:`benchmarks.compare`; the numbers are medians over the rounds. Product
CPU per invocation is that of Postgres (or the embedded server), the gateway
and the nodes. The load average is read at the start of every round. Needs
ASYNCRPC_RESONATE_SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from asyncrpc.postgres import local
from asyncrpc.postgres.schema import DEQUEUE_ACQUIRE
from benchmarks import compare, load_client
from benchmarks.bench import Bench
from benchmarks.loads import HTTP_PRODUCT, OUR_GATEWAY, Contender, Level, gateway_call
from benchmarks.measure import CpuMeter, LoadResult, drive
from benchmarks.report import PartResult, Table
from benchmarks.servers import family, start_postgres
from harness.processes import READY_TIMEOUT, Process
from harness.system import start_gateway, start_node, wait_ready
from harness.waiting import http_ok, wait_until

#: Stored promises of the ``30k`` system before its first round.
SEED = 30_000
#: The targets, shown beside the measurements (never asserted).
HISTORY_TARGET = 0.9
SCALE_TARGET = 0.9
IDLE_POSTGRES_TARGET = 0.05
CPU_TARGET_MS = 20.0

#: The login role each kind of process connects as (superusers, trusted on loopback as the
#: ``postgres`` role is), so pg_stat_statements counts each kind's statements apart.
STATEMENT_ROLES = {"gateway": "bench_gateway", "nodes": "bench_nodes"}
#: What each statement of the link is, by a word of its text.
STATEMENT_KINDS = (
    ("asyncrpc.rpc", "requests (asyncrpc.rpc)"),
    ("dequeue_acquire", "dequeue_acquire (with leases)"),
    ("resonate_rpc", "requests (resonate_rpc)"),
    ("dequeue_execute", "dequeue_execute"),
    ("dequeue_unblock", "dequeue_unblock"),
    ("process_timeouts", "timers"),
    ("advisory", "elections (timer driver, group listener)"),
    ("LISTEN", "LISTEN"),
)

#: Await chains as resonate-pg stores them, settled: three promises and three tasks each.
SEED_SQL = """
WITH chain AS (
  SELECT 'seed-' || n AS root, (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now
  FROM generate_series(1, %(chains)s) AS n
), step AS (
  SELECT root AS id, root AS origin, root AS parent, 'service-a' AS g, 'foo' AS fn, now FROM chain
  UNION ALL
  SELECT root || '.1', root, root, 'service-b', 'bar', now FROM chain
  UNION ALL
  SELECT root || '.1.1', root, root || '.1', 'service-c', 'baz', now FROM chain
), inserted AS (
  INSERT INTO resonate.promises
    (id, state, param_headers, param_data, value_headers, value_data, tags,
     timeout_at, created_at, settled_at)
  SELECT id, 'resolved', '{}',
         encode(convert_to(json_build_object('func', fn, 'args', json_build_array(1),
                                             'version', 1)::text, 'utf8'), 'base64'),
         '{}', 'Mw==',
         jsonb_build_object('resonate:target', 'poll://any@' || g, 'resonate:scope', 'global',
                            'resonate:origin', origin, 'resonate:branch', id,
                            'resonate:parent', parent),
         now + 86400000, now - 60000, now - 59000
  FROM step
  RETURNING id
)
INSERT INTO resonate.tasks (id, state, version) SELECT id, 'fulfilled', 1 FROM inserted
"""


def seed(dsn: str, promises: int) -> int:
    """Store about ``promises`` settled promises (whole await chains); how many are stored then."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SEED_SQL, {"chains": max(promises // 3, 1)})  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE resonate.promises, resonate.tasks")
        return stored(conn)


def stored(conn: Any) -> int:
    row = conn.execute("SELECT count(*) FROM resonate.promises").fetchone()
    return int(row[0])


def count_stored(dsn: str) -> int:
    """How many promises the database holds."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return stored(conn)


def forget_history(dsn: str) -> int:
    """Delete every settled promise (``resonate.gc`` up to now); how many went.

    No ``VACUUM`` after it: autovacuum takes the dead rows as it would under a
    short retention, and the tables' statistics stay those of tables in use
    (a vacuum of an emptied table tells the planner it is empty).
    """
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        now = int(time.time() * 1000)
        row = conn.execute("SELECT resonate.gc(%s, 100000000)", (now + 1,)).fetchone()
        return int(row[0]) if row else 0


def count_statements(dsn: str) -> None:
    """Have the database count statements by role (pg_stat_statements) and make the roles.

    Needs a restart afterwards: the library is loaded at start-up.
    """
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        for role in STATEMENT_ROLES.values():
            conn.execute(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                f"THEN CREATE ROLE {role} LOGIN SUPERUSER; END IF; END $$"
            )


def drop_dequeue_acquire(dsn: str) -> None:
    """Drop the schema step's leasing dequeue: the nodes then dequeue and acquire apart."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP FUNCTION {DEQUEUE_ACQUIRE}")


def as_role(dsn: str, role: str) -> str:
    """``dsn`` (the ``postgres`` role's, on loopback) for ``role``."""
    return dsn.replace(f"//{local.SUPERUSER}@", f"//{role}@", 1)


def statements(dsn: str) -> dict[tuple[str, str], int]:
    """Statements run so far by each kind of process, by kind of statement."""
    import psycopg

    roles = {role: kind for kind, role in STATEMENT_ROLES.items()}
    counts: dict[tuple[str, str], int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        rows = conn.execute(
            "SELECT r.rolname, s.query, s.calls FROM pg_stat_statements s "
            "JOIN pg_roles r ON r.oid = s.userid WHERE s.toplevel"
        ).fetchall()
    for role, query, calls in rows:
        if role not in roles:
            continue
        kind = next((name for word, name in STATEMENT_KINDS if word in query), "other")
        key = (roles[role], kind)
        counts[key] = counts.get(key, 0) + int(calls)
    return counts


def cpu_times(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each process that still runs."""
    seconds = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            seconds[pid] = times.user + times.system
    return seconds


async def idle_cores(groups: Mapping[str, Sequence[int]], seconds: float) -> dict[str, float]:
    """CPU cores each group of processes used over ``seconds`` of waiting (a process that started
    meanwhile counts from zero)."""
    before = {name: cpu_times(pids) for name, pids in groups.items()}
    await asyncio.sleep(seconds)
    used = {}
    for name, pids in groups.items():
        after = cpu_times(pids)
        used[name] = sum(t - before[name].get(pid, 0.0) for pid, t in after.items()) / seconds
    return used


@dataclass
class PgSystem:
    """One resonate-pg system: its Postgres, gateway and nodes."""

    name: str
    dsn: str
    postgres: Process
    gateway: Process
    url: str
    nodes: list[Process] = field(default_factory=list)
    #: Delete the settled history before each round.
    fresh: bool = False
    #: Statements per invocation in each round, by kind of process and of statement.
    statements: list[dict[tuple[str, str], float]] = field(default_factory=list)

    def postgres_pids(self) -> list[int]:
        return family(self.postgres)

    def all_pids(self) -> list[int]:
        return [*self.postgres_pids(), self.gateway.pid, *(node.pid for node in self.nodes)]

    def meter(self) -> CpuMeter:
        return CpuMeter(
            {
                "server": self.postgres_pids(),
                "gateway": [self.gateway.pid],
                "nodes": [node.pid for node in self.nodes],
            }
        )

    async def level(self, ids: list[str], warmup: list[str], callers: int) -> LoadResult:
        if self.fresh:
            await asyncio.to_thread(forget_history, self.dsn)
        async with load_client.session(self.url, callers, 120.0) as client:
            call = gateway_call(client)
            await drive(call, warmup, callers)
            before = await asyncio.to_thread(statements, self.dsn)
            result = await drive(call, ids, callers, self.meter())
            after = await asyncio.to_thread(statements, self.dsn)
        done = max(result.invocations - result.errors, 1)
        self.statements.append(
            {key: (after[key] - before.get(key, 0)) / done for key in after if after[key]}
        )
        return result


@contextlib.asynccontextmanager
async def pg_system(
    bench: Bench, name: str, replicas: Mapping[str, int], fresh: bool, plain: bool = False
) -> AsyncIterator[PgSystem]:
    """A resonate-pg system with ``replicas`` of each node (1 where not named); stopped after.

    ``plain``: without ``asyncrpc.dequeue_acquire``.
    """
    base = Path(tempfile.mkdtemp(prefix=f"asyncrpc-bench-pg-{name}-"))
    started: list[Process] = []
    try:
        bench.say(f"[{name}] starting Postgres (resonate.sql + asyncrpc's step) + gateway + nodes")
        postgres, dsn = start_postgres(bench, base / "data")
        await asyncio.to_thread(count_statements, dsn)
        postgres.stop()
        postgres, dsn = start_postgres(bench, base / "data")
        started.append(postgres)
        if plain:
            await asyncio.to_thread(drop_dequeue_acquire, dsn)
        gateway, url = start_gateway(bench.procs, as_role(dsn, STATEMENT_ROLES["gateway"]))
        started.append(gateway)
        nodes = []
        node_dsn = as_role(dsn, STATEMENT_ROLES["nodes"])
        for node in bench.sizes.pg_nodes:
            for replica in range(1, replicas.get(node, 1) + 1):
                nodes.append(start_node(bench.procs, node, node_dsn, "--id", f"{node}-{replica}"))
        started += nodes
        wait_ready(gateway, *nodes)
        wait_until(lambda: http_ok(f"{url}/healthz"), READY_TIMEOUT, "the gateway's /healthz")
        yield PgSystem(name, dsn, postgres, gateway, url, nodes, fresh)
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(base, ignore_errors=True)


def pg_contender(
    name: str, label: str, replicas: Mapping[str, int], fresh: bool, plain: bool = False
) -> Contender:
    @contextlib.asynccontextmanager
    async def open_level(bench: Bench) -> AsyncIterator[Level]:
        async with pg_system(bench, name, replicas, fresh, plain) as system:
            yield system.level

    return Contender(name, label, f"Await chain on resonate-pg, {label}", HTTP_PRODUCT, open_level)


FRESH = pg_contender("fresh", "resonate-pg, fresh", {}, fresh=True)
HISTORY = pg_contender("30k", "resonate-pg, 30k stored promises", {}, fresh=False)
SCALED = pg_contender("b2", "resonate-pg, fresh, b=2", {"b": 2}, fresh=True)
PLAIN = pg_contender("plain", "resonate-pg, fresh, acquire by request", {}, fresh=True, plain=True)
EMBEDDED = Contender(
    "embedded", "asyncrpc server (SQLite)", OUR_GATEWAY.title, HTTP_PRODUCT, OUR_GATEWAY.open
)
CONTENDERS = (FRESH, HISTORY, SCALED, PLAIN, EMBEDDED)


@dataclass
class Measured:
    rounds: dict[str, list[LoadResult]]
    idle: dict[str, dict[str, float]]
    stored: dict[str, int]
    #: Each resonate-pg system's statements per invocation, by round (:attr:`PgSystem.statements`).
    statements: dict[str, list[dict[tuple[str, str], float]]] = field(default_factory=dict)
    #: The load average (1 minute) at the start of each round.
    load: list[float] = field(default_factory=list)


async def measure(bench: Bench, callers: int) -> Measured:
    """Open every contender, seed, measure the idle CPU, then the interleaved rounds.

    Only the systems :attr:`Sizes.pg_systems` names, where it names any.
    """
    sizes = bench.sizes
    contenders = tuple(c for c in CONTENDERS if not sizes.pg_systems or c.name in sizes.pg_systems)
    count = sizes.invocations(sizes.pg_invocations, callers)
    async with contextlib.AsyncExitStack() as stack:
        systems: dict[str, PgSystem] = {}
        levels: dict[str, Level] = {}
        for contender in contenders:
            if contender is EMBEDDED:
                levels[contender.name] = await stack.enter_async_context(contender.open(bench))
                continue
            replicas = {"b": 2} if contender is SCALED else {}
            system = await stack.enter_async_context(
                pg_system(
                    bench,
                    contender.name,
                    replicas,
                    fresh=contender is not HISTORY,
                    plain=contender is PLAIN,
                )
            )
            systems[contender.name] = system
            levels[contender.name] = system.level
        bench.say(f"[30k] storing {sizes.pg_seed:,} settled promises")
        if HISTORY.name in systems:
            await asyncio.to_thread(seed, systems[HISTORY.name].dsn, sizes.pg_seed)
        held = {
            name: await asyncio.to_thread(count_stored, system.dsn)
            for name, system in systems.items()
        }
        bench.say(f"no traffic for {sizes.pg_idle_s:g}s: CPU of each resonate-pg system")
        await asyncio.sleep(min(2.0, sizes.pg_idle_s))  # let the seeding's vacuum settle
        groups = {}
        for name, system in systems.items():
            groups[f"{name} postgres"] = system.postgres_pids()
            groups[f"{name} all"] = system.all_pids()
        cores = await idle_cores(groups, sizes.pg_idle_s)
        idle = {
            name: {"postgres": cores[f"{name} postgres"], "all": cores[f"{name} all"]}
            for name in systems
        }
        rounds: dict[str, list[LoadResult]] = {c.name: [] for c in contenders}
        load: list[float] = []
        for number in range(sizes.pg_rounds):
            load.append(os.getloadavg()[0])
            for contender in compare.rotated(number, contenders):
                bench.say(
                    f"pg round {number + 1}/{sizes.pg_rounds}: {contender.label}, "
                    f"{callers} callers x {count} invocations"
                )
                ids = bench.ids(f"pg-{contender.name}-{number}", count)
                warmup = bench.ids(f"pg-{contender.name}-{number}-warm", min(callers, 16))
                rounds[contender.name].append(await levels[contender.name](ids, warmup, callers))
        counted = {name: system.statements for name, system in systems.items()}
        return Measured(rounds, idle, held, counted, load)


def ratio(top: dict[str, Any], bottom: dict[str, Any]) -> dict[str, float | None]:
    """``top`` over ``bottom``: by invocations/s, and by invocations per CPU-second."""
    below = bottom["invocations_per_s"]
    rate = top["invocations_per_s"] / below if below else 0.0
    top_cpu = top["product_cpu_ms_per_invocation"]
    bottom_cpu = bottom["product_cpu_ms_per_invocation"]
    by_cpu = bottom_cpu / top_cpu if top_cpu and bottom_cpu else None
    return {"value": round(rate, 3), "by_cpu": None if by_cpu is None else round(by_cpu, 3)}


def report(callers: int, rounds: int, measured: Measured) -> PartResult:
    """The part's tables and JSON from what :func:`measure` took."""
    levels = {
        c.name: compare.median_level(c, measured.rounds[c.name])
        for c in CONTENDERS
        if measured.rounds.get(c.name)
    }
    labels = {c.name: c.label for c in CONTENDERS}
    medians = compare.medians_table(
        f"Await chain, {callers} callers, {rounds} round(s) interleaved, medians",
        "system",
        levels,
        labels,
        by_role=True,
    )
    ratios = {
        "30k / fresh": (HISTORY.name, FRESH.name, HISTORY_TARGET),
        "b=2 / fresh": (SCALED.name, FRESH.name, SCALE_TARGET),
        "fresh / embedded": (FRESH.name, EMBEDDED.name, None),
    }
    computed = {}
    ratio_table = Table(
        "resonate-pg ratios (interleaved medians)", ["ratio", "inv/s", "by CPU", "target"]
    )
    for name, (top, bottom, target) in ratios.items():
        if top not in levels or bottom not in levels:
            continue
        value = ratio(levels[top], levels[bottom])
        computed[name] = {**value, "target": target}
        by_cpu = "-" if value["by_cpu"] is None else f"{value['by_cpu']:.2f}"
        wanted = "-" if target is None else f">= {target:g}"
        ratio_table.add(name, f"{value['value']:.2f}", by_cpu, wanted)
    idle_table = Table(
        "No traffic: CPU cores used",
        ["system", "promises stored", "Postgres", "all its processes"],
    )
    for name, cores in measured.idle.items():
        idle_table.add(
            labels[name],
            f"{measured.stored.get(name, 0):,}",
            f"{cores['postgres']:.3f}",
            f"{cores['all']:.3f}",
        )
    statement_table, per_invocation = statements_report(measured.statements, labels)
    paired_table, paired = paired_report(measured)
    cpu = {name: level["product_cpu_ms_per_invocation"] for name, level in levels.items()}
    errors = [
        f"{labels[name]}: {turn.errors} error(s), first: {turn.first_error}"
        for name, turns in measured.rounds.items()
        for turn in turns[:1]
        if turn.errors
    ]
    data = {
        "callers": callers,
        "rounds": rounds,
        "systems": levels,
        "ratios": computed,
        "idle_cores": measured.idle,
        "stored": measured.stored,
        "targets": {
            "30k / fresh": HISTORY_TARGET,
            "b=2 / fresh": SCALE_TARGET,
            "idle postgres cores at 30k": IDLE_POSTGRES_TARGET,
            "product cpu ms per invocation": CPU_TARGET_MS,
        },
        "product_cpu_ms_per_invocation": cpu,
        "statements_per_invocation": per_invocation,
        "leases_in_dequeue": paired,
        "load_average_per_round": [round(load, 2) for load in measured.load],
    }
    return PartResult(
        "pg",
        data=data,
        tables=[medians, ratio_table, idle_table, statement_table, paired_table],
        notes=[
            *errors,
            "product CPU: Postgres (postmaster and backends) or asyncrpc server, + gateway + "
            "nodes; targets: 30k / fresh and b=2 / fresh >= 0.9, Postgres with no traffic at "
            f"30k < {IDLE_POSTGRES_TARGET} cores, product CPU <= {CPU_TARGET_MS:g} ms "
            "per invocation",
            "fresh and b=2 (b2) delete their settled history (resonate.gc) before each round",
            "statements: pg_stat_statements' top-level calls during the measured invocations, "
            "medians over the rounds; each is one round trip (its own sync point)",
        ],
    )


def paired_report(measured: Measured) -> tuple[Table, dict[str, Any]]:
    """``fresh`` against ``plain`` round by round: CPU per invocation of the nodes and Postgres.

    The two ran in the same round, one after the other, so under the same load: their
    ratio in each round is steadier than either's own numbers.
    """
    table = Table(
        "Leases in the dequeue: fresh against plain (acquire by request), each round",
        [
            "round",
            "load avg",
            "inv/s fresh / plain",
            "nodes ms/inv fresh / plain",
            "Postgres ms/inv fresh / plain",
            "nodes ratio",
            "Postgres ratio",
        ],
    )
    fresh_rounds = measured.rounds.get(FRESH.name, [])
    plain_rounds = measured.rounds.get(PLAIN.name, [])
    pairs = list(zip(fresh_rounds, plain_rounds, strict=False))
    nodes_ratio, server_ratio, rounds = [], [], []
    for number, (fresh, plain) in enumerate(pairs):
        ours, theirs = fresh.cpu_ms_per_invocation(), plain.cpu_ms_per_invocation()
        load = measured.load[number] if number < len(measured.load) else float("nan")
        nodes = ours["nodes"] / theirs["nodes"] if theirs.get("nodes") else float("nan")
        server = ours["server"] / theirs["server"] if theirs.get("server") else float("nan")
        nodes_ratio.append(nodes)
        server_ratio.append(server)
        rounds.append(
            {
                "load_average": round(load, 2),
                "invocations_per_s": [round(fresh.per_second, 1), round(plain.per_second, 1)],
                "nodes_ms": [round(ours["nodes"], 2), round(theirs["nodes"], 2)],
                "postgres_ms": [round(ours["server"], 2), round(theirs["server"], 2)],
            }
        )
        table.add(
            str(number + 1),
            f"{load:.1f}",
            f"{fresh.per_second:.1f} / {plain.per_second:.1f}",
            f"{ours['nodes']:.2f} / {theirs['nodes']:.2f}",
            f"{ours['server']:.2f} / {theirs['server']:.2f}",
            f"{nodes:.3f}",
            f"{server:.3f}",
        )
    data: dict[str, Any] = {"rounds": rounds}
    if pairs:
        data["nodes_ratio_median"] = round(statistics.median(nodes_ratio), 3)
        data["postgres_ratio_median"] = round(statistics.median(server_ratio), 3)
        table.add(
            "median",
            "",
            "",
            "",
            "",
            f"{data['nodes_ratio_median']:.3f}",
            f"{data['postgres_ratio_median']:.3f}",
        )
    return table, data


def median_count(
    rounds: list[dict[tuple[str, str], float]], pick: Callable[[tuple[str, str]], bool]
) -> float:
    """The median over ``rounds`` of the statements per invocation whose key ``pick`` takes."""
    return statistics.median(sum(v for k, v in turn.items() if pick(k)) for turn in rounds)


def part(index: int, value: str) -> Callable[[tuple[str, str]], bool]:
    """Whether a (process, statement) key has ``value`` at ``index``."""
    return lambda key: key[index] == value


def statements_report(
    counted: dict[str, list[dict[tuple[str, str], float]]], labels: dict[str, str]
) -> tuple[Table, dict[str, Any]]:
    """Statements per invocation of each system: medians over its rounds, by kind."""
    kinds = [name for _, name in STATEMENT_KINDS] + ["other"]
    table = Table(
        "Statements (round trips) per invocation, medians",
        ["system", "gateway", "nodes", "all", "by statement (all processes)"],
    )
    data: dict[str, Any] = {}
    for name, turns in counted.items():
        if not turns:
            continue
        by_process = {process: median_count(turns, part(0, process)) for process in STATEMENT_ROLES}
        by_kind = {kind: round(median_count(turns, part(1, kind)), 2) for kind in kinds}
        by_kind = {kind: v for kind, v in by_kind.items() if v}
        total = median_count(turns, lambda k: True)
        data[name] = {
            "all": round(total, 2),
            "by_process": {p: round(v, 2) for p, v in by_process.items()},
            "by_statement": by_kind,
        }
        table.add(
            labels[name],
            f"{by_process['gateway']:.1f}",
            f"{by_process['nodes']:.1f}",
            f"{total:.1f}",
            " ".join(f"{kind} {v:.1f}" for kind, v in by_kind.items()),
        )
    return table, data


def run(bench: Bench) -> PartResult:
    callers = min(bench.sizes.callers, key=lambda c: abs(c - compare.REFERENCE_CALLERS))
    measured = asyncio.run(measure(bench, callers))
    return report(callers, bench.sizes.pg_rounds, measured)
