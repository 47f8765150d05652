"""The ``startup`` part: start-up time of the whole topology, and its memory.

Directly: the server is started, and once it answers ``/healthz`` the gateway
and the nine nodes are started at once (each a ``python -m asyncrpc``
process, as ``asyncrpc up`` runs them); ready means every node printed its
ready line and the gateway's ``/healthz`` answered 200. Memory is RSS (VmRSS
from /proc) summed over the eleven processes, once ready and idle.

Then the same through the launcher, when ``asyncrpc up --detach`` is
available: the command's wall time until it returns (it returns once
everything is ready), and memory summed over the supervisor and every process
under it (its template and the replicas forked from it): RSS, and PSS and USS,
which count pages forked children share once instead of once per process.
While it runs (``--respawn 0``): the wall time of `asyncrpc status`, `call`
and `kill` (each a fresh CLI process; the median of CLI_SAMPLES runs), and
from a kill -9 of a worker until the supervisor's state file shows its
replacement ready. ``asyncrpc down`` stops them (and
:class:`~harness.launched.Launched` anything left, by pid).

Last, the crash demo's slowest moment: await-chain runs with c's step
sleeping durably; b is killed while its step waits on c; once c's step is due
`asyncrpc start b` is issued, and the time until the caller has the flow's
result is taken, the CLI's own start included. Each launcher round first times
one ``python -c "import resonate.resonate"`` (what the start-up ratio is set
against) and a bare two-command Typer CLI (the part of every command that no
import of ours saves), right there: the machine's load drifts between rounds.
When the SDK's installed files carry bytecode, the project's modules are
compiled first (:func:`compile_like_the_sdk`), so both sides of the ratio load
bytecode.
"""

from __future__ import annotations

import compileall
import concurrent.futures
import contextlib
import functools
import importlib.util
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from asyncrpc.lesson import topology
from asyncrpc.ops.call import FlowCaller
from asyncrpc.runtime import config
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import ReplicaState, RunState
from benchmarks.bench import Bench, BenchError
from benchmarks.measure import rss_bytes
from benchmarks.report import PartResult, Table, mib, secs
from harness.isolation import free_port
from harness.launched import Launched
from harness.processes import ASYNCRPC, READY_TIMEOUT
from harness.system import start_system
from harness.waiting import wait_until

#: Let start-up garbage settle before reading memory.
SETTLE_S = 1.0
#: How often the state file is read while waiting for a replacement.
STATE_POLL_S = 0.005
#: The worker killed in the respawn measurement, and the one `asyncrpc kill` signals.
RESPAWNED, KILLED = "b.1", "c"
#: Runs of each CLI command per round: one run is at the mercy of whatever else the machine does.
CLI_SAMPLES = 5
AWAIT_CHAIN = topology.FLOWS["await-chain"]


def python_s(code: str) -> float:
    """Wall seconds of one `python -c CODE`."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True)
    return round(time.monotonic() - began, 3)


def launched_processes(state: RunState) -> list[int]:
    """The supervisor, every replica, and the template they were forked from (their parent)."""
    pids = {state.supervisor.pid, *(ref.pid for _, ref in state.processes())}
    for _, ref in state.processes():
        with contextlib.suppress(psutil.Error):
            pids.add(psutil.Process(ref.pid).ppid())
    pids.discard(1)
    return sorted(pids)


def memory_of(pids: list[int]) -> dict[str, int]:
    """RSS, PSS and USS summed over ``pids``."""
    totals = {"rss_bytes": 0, "pss_bytes": 0, "uss_bytes": 0}
    for pid in pids:
        try:
            memory = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        totals["rss_bytes"] += memory.rss
        totals["pss_bytes"] += getattr(memory, "pss", memory.uss)
        totals["uss_bytes"] += memory.uss
    return totals


#: A Typer application of two commands, nothing else: what any command of a Typer CLI costs.
TYPER_FLOOR = """
import typer
app = typer.Typer()
@app.command()
def status(run_dir: str = "") -> None: pass
@app.command()
def other() -> None: pass
app(["status"])
"""


def timed_cli(env: dict[str, str], *args: str) -> float:
    """Wall seconds of one `asyncrpc ARGS...`, which must succeed."""
    began = time.monotonic()
    done = subprocess.run([*ASYNCRPC, *args], capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.monotonic() - began
    if done.returncode != 0:
        raise BenchError(f"asyncrpc {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return round(elapsed, 3)


def median_cli(
    env: dict[str, str], args: tuple[str, ...], then: Callable[[], None] = lambda: None
) -> float:
    """The median wall seconds of CLI_SAMPLES runs of `asyncrpc ARGS...`, ``then`` after each."""
    samples = []
    for _ in range(CLI_SAMPLES):
        samples.append(timed_cli(env, *args))
        then()
    return statistics.median(samples)


def wait_replaced(run_dir: Path, name: str, pid: int | None) -> None:
    """Until the state file shows replica ``name`` running under a pid other than ``pid``."""
    deadline = time.monotonic() + READY_TIMEOUT
    while replica_pid(run_dir, name) in (None, pid):
        if time.monotonic() > deadline:
            raise BenchError(f"{name} was not replaced within {READY_TIMEOUT:g}s")
        time.sleep(STATE_POLL_S)


def replica_pid(run_dir: Path, name: str, state: ReplicaState = ReplicaState.RUNNING) -> int | None:
    """The pid of replica ``name`` as the supervisor's state file lists it, when in ``state``."""
    found = RunDir(run_dir).read_state()
    if found is None:
        return None
    for replica in found.snapshot.replicas:
        if replica.name == name and replica.state is state:
            return replica.pid
    return None


def respawn_s(run_dir: Path) -> float:
    """From kill -9 of RESPAWNED until the state file shows its replacement ready."""
    pid = replica_pid(run_dir, RESPAWNED)
    ref = ProcessRef.of(pid) if pid is not None else None
    if ref is None:
        raise BenchError(f"{RESPAWNED} is not running")
    began = time.monotonic()
    ref.signal(signal.SIGKILL)
    wait_replaced(run_dir, RESPAWNED, pid)
    return round(time.monotonic() - began, 3)


def direct_round(bench: Bench, i: int) -> dict[str, Any]:
    with bench.procs.scope():
        system = start_system(bench.procs, bench.log_dir / f"startup-{i}.db")
        time.sleep(SETTLE_S)
        processes = system.processes()
        return {
            "ready_s": round(system.ready_after, 3),
            **memory_of([p.pid for p in processes]),
            "rss_by_process_bytes": {p.name: rss_bytes(p.pid) for p in processes},
            "processes": len(processes),
        }


def launcher_unavailable(bench: Bench) -> str | None:
    """None when `asyncrpc up --detach` can be used, else why not."""
    try:
        shown = subprocess.run(
            [*ASYNCRPC, "up", "--help"],
            capture_output=True,
            text=True,
            env=dict(bench.procs.base_env),
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "`asyncrpc up --help` did not answer within 60 s"
    if shown.returncode != 0 or "--detach" not in shown.stdout:
        return "`asyncrpc up --detach` is not available"
    return None


def up_detached(
    bench: Bench, run_dir: Path, *args: str, template: bool = True, code: Path | None = None
) -> tuple[dict[str, str], float]:
    """`asyncrpc up --detach ARGS` on free ports in ``run_dir``: its env and wall seconds.

    ``code``: a directory holding another copy of asyncrpc, run instead of this one
    (`python -m` finds the package in its working directory first).
    """
    env = {**bench.procs.base_env, config.ENV_RUN_DIR: str(run_dir)}
    env[config.ENV_TEMPLATE] = "1" if template else "0"
    ports = ["--server-port", str(free_port()), "--gateway-port", str(free_port())]
    ports += ["--dashboard-port", str(free_port())]
    began = time.monotonic()
    up = subprocess.run(
        [*ASYNCRPC, "up", "--detach", "--run-dir", str(run_dir), *ports, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3 * READY_TIMEOUT,
        cwd=code,
    )
    elapsed = time.monotonic() - began
    if up.returncode != 0:
        raise BenchError(f"asyncrpc up --detach exited {up.returncode}: {up.stderr[-500:]}")
    return env, round(elapsed, 3)


#: The server's line for a poll stream that connected, with its time (asctime: ms).
STREAM_OPEN = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO asyncrpc\.server\.router: "
    r"stream open group=\S+ pid=(\S+)$",
    re.MULTILINE,
)
#: A ready line's unique id.
READY_ID = re.compile(rf"^{re.escape(config.READY_MARKER)} .*\bid=(\S+)", re.MULTILINE)


def start_time_offset() -> float:
    """How far psutil's process start times are from the wall clock, in seconds.

    psutil counts a start from the boot time, which Linux gives in whole seconds,
    so its start times are off the wall clock by up to a second, the same for
    every process. A process started here at a known wall time measures it.
    """
    began = time.time()
    probe = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    try:
        return psutil.Process(probe.pid).create_time() - began
    finally:
        probe.kill()
        probe.wait()


#: The server's "listening" line, with its time (asctime: ms).
LISTENING = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO asyncrpc\.server: asyncrpc server "
    r"listening",
    re.MULTILINE,
)


def fork_timeline(run_dir: Path, state: RunState) -> dict[str, float]:
    """When the supervisor asked for what, seen from its children's start times (seconds).

    ``server_s``: the server's fork after the supervisor's; ``listening_s``: the server's
    "listening" line after its fork; ``others_s`` and ``others_last_s``: the first and the
    last other replica's fork after that line (how long the supervisor took to notice the
    server's readiness and ask for the rest). Start times as in :func:`ready_after_fork`.
    """
    offset = start_time_offset()
    server_log = RunDir(run_dir).log_for(topology.SERVER)
    text = server_log.read_text(errors="replace") if server_log.exists() else ""
    listening = LISTENING.search(text)
    started: dict[str, float] = {}
    for name, ref in [("supervisor", state.supervisor), *state.processes()]:
        try:
            started[name] = psutil.Process(ref.pid).create_time() - offset
        except psutil.Error:
            continue
    others = [at for name, at in started.items() if name not in ("supervisor", topology.SERVER)]
    server = started.get(topology.SERVER)
    timeline: dict[str, float] = {}
    if server is not None and "supervisor" in started:
        timeline["server_s"] = round(server - started["supervisor"], 3)
    if server is not None and listening and others:
        stamp, millis = listening.groups()
        at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
        timeline["listening_s"] = round(at - server, 3)
        timeline["others_s"] = round(min(others) - at, 3)
        timeline["others_last_s"] = round(max(others) - at, 3)
    return timeline


def ready_after_fork(run_dir: Path, state: RunState) -> dict[str, float]:
    """Per replica, seconds from its fork (its process's start) until its poll stream connected.

    The start is the kernel's (10 ms ticks, set on the wall clock with
    :func:`start_time_offset`), the connection the server's log line (ms); the
    server itself is counted until its log's "listening" line.
    """
    offset = start_time_offset()
    logs = RunDir(run_dir)
    opened: dict[str, float] = {}
    server_log = logs.log_for(topology.SERVER)
    text = server_log.read_text(errors="replace") if server_log.exists() else ""
    for stamp, millis, pid in STREAM_OPEN.findall(text):
        at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
        opened.setdefault(pid, at)
    listening = LISTENING.search(text)
    after: dict[str, float] = {}
    for name, ref in state.processes():
        try:
            started = psutil.Process(ref.pid).create_time() - offset
        except psutil.Error:
            continue
        if name == topology.SERVER and listening:
            stamp, millis = listening.groups()
            at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
            after[name] = round(at - started, 3)
            continue
        log = logs.log_for(name)
        found = READY_ID.search(log.read_text(errors="replace")) if log.exists() else None
        if found and found.group(1) in opened:
            after[name] = round(opened[found.group(1)] - started, 3)
    return after


def launcher_round(bench: Bench, i: int, template: bool = True) -> dict[str, Any]:
    run_dir = bench.log_dir / f"launcher-{i}-{'template' if template else 'spawn'}"
    launched = Launched(run_dir, {**bench.procs.base_env, config.ENV_RUN_DIR: str(run_dir)})
    try:
        # The yardsticks, taken next to what they measure: this machine's load drifts.
        one_import = python_s("import resonate.resonate")
        typer_floor = python_s(TYPER_FLOOR)
        env, elapsed = up_detached(bench, run_dir, "--respawn", "0", template=template)
        launched.remember()
        time.sleep(SETTLE_S)
        state = RunDir(run_dir).read_state()
        if state is None:
            raise BenchError("the supervisor left no state file")
        pids = launched_processes(state)
        memory = memory_of(pids)
        forks = ready_after_fork(run_dir, state)
        killed = f"{KILLED}.1"

        def killed_replaced() -> None:  # `--respawn 0` starts it again at once
            wait_replaced(run_dir, killed, replica_pid(run_dir, killed, ReplicaState.KILLED))

        return {
            "ready_s": elapsed,
            "import_s": one_import,
            "typer_floor_s": typer_floor,
            **memory,
            "processes": len(pids),
            "status_s": median_cli(env, ("status",)),
            "call_s": median_cli(env, ("call", AWAIT_CHAIN.name)),
            "respawn_s": respawn_s(run_dir),
            "kill_s": median_cli(env, ("kill", KILLED), then=killed_replaced),
            "ready_after_fork_s": forks,
            "slowest_fork_to_ready_s": max(forks.values(), default=float("nan")),
        }
    finally:
        launched.remember()
        launched.stop()


def sdk_has_bytecode() -> bool:
    """Whether the installed SDK's files carry their bytecode (what the ratio's import loads)."""
    spec = importlib.util.find_spec("resonate.resonate")
    return spec is not None and spec.cached is not None and Path(spec.cached).exists()


def compile_like_the_sdk(code: Path, sdk_compiled: Callable[[], bool] = sdk_has_bytecode) -> bool:
    """Compile ``code``'s package to bytecode when the SDK's installed files have theirs.

    Where Python may not write bytecode (``PYTHONDONTWRITEBYTECODE``) an editable
    checkout's modules are compiled from source in every process, while the SDK's,
    compiled at install (``uv sync --compile-bytecode``), are not: the ratio would
    set one import of bytecode against an `up` that compiles. A machine that
    writes bytecode has both compiled from its second run on, which is what this
    makes here. Returns whether it compiled.
    """
    if not sdk_compiled():
        return False
    return bool(compileall.compile_dir(code / "asyncrpc", quiet=1))


def base_code(bench: Bench, revision: str) -> Path:
    """``revision`` of this repository as files (`git archive`), to run beside this code."""
    where = bench.log_dir / "base-code"
    where.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {revision}: {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    compile_like_the_sdk(where)
    return where


def up_round(bench: Bench, name: str, code: Path | None) -> dict[str, Any]:
    """One `up --detach` (template) of ``code`` (None: this code) against one SDK import."""
    run_dir = bench.log_dir / name
    launched = Launched(run_dir, {**bench.procs.base_env, config.ENV_RUN_DIR: str(run_dir)})
    try:
        one_import = python_s("import resonate.resonate")
        began = time.time()
        _, elapsed = up_detached(bench, run_dir, code=code)
        launched.remember()
        state = RunDir(run_dir).read_state()
        if state is None:
            raise BenchError("the supervisor left no state file")
        timeline = fork_timeline(run_dir, state)
        with contextlib.suppress(psutil.Error):
            forked = psutil.Process(state.supervisor.pid).create_time() - start_time_offset()
            timeline["supervisor_s"] = round(forked - began, 3)
        return {
            "ready_s": elapsed,
            "import_s": one_import,
            "ratio": round(elapsed / one_import, 3),
            "load_1m": round(os.getloadavg()[0], 2),
            "ready_after_fork_s": ready_after_fork(run_dir, state),
            "timeline": timeline,
        }
    finally:
        launched.remember()
        launched.stop()


#: One `up --detach` round: the bench, the round's name, and the code to run (None: this code).
UpRound = Callable[[Bench, str, Path | None], dict[str, Any]]


def against_base(
    bench: Bench, revision: str, code: Path, one_round: UpRound = up_round
) -> dict[str, Any]:
    """`up --detach` of ``revision`` (its files in ``code``) and of this code, in pairs of
    rounds, each pair's order swapped from the last: the machine's load drifts, so only what
    is measured side by side is compared."""
    pairs = []
    for i in range(bench.sizes.startup_ab_rounds):
        bench.say(f"start-up: against {revision}, pair {i + 1}/{bench.sizes.startup_ab_rounds}")
        ways = [("base", code), ("this", None)]
        pair = {}
        for key, where in ways if i % 2 == 0 else reversed(ways):
            pair[key] = one_round(bench, f"ab-{i}-{key}", where)
        pairs.append(pair)
    medians = {
        f"{key}_{number}_median": statistics.median(p[key][number] for p in pairs)
        for key in ("base", "this")
        for number in ("ready_s", "import_s", "ratio")
    }
    ratios = [p["this"]["ready_s"] / p["base"]["ready_s"] for p in pairs]
    return {
        "revision": revision,
        "pairs": pairs,
        **medians,
        "this_over_base_median": round(statistics.median(ratios), 3),
    }


def against_base_table(data: dict[str, Any]) -> Table:
    """Each pair of `up --detach` rounds: seconds and times one SDK import, and the load."""
    table = Table(
        f"`up --detach` against {data['revision']}, interleaved pairs "
        "(s, and in brackets x one SDK import taken just before)",
        [
            "pair",
            "base",
            "this",
            "this / base",
            "load (1 min)",
            "supervisor forked at",
            "rest asked after listening",
        ],
    )

    def shown(r: dict[str, Any]) -> str:
        return f"{r['ready_s']:.2f} ({r['ratio']:.2f}x)"

    def moment(r: dict[str, Any], key: str) -> str:
        timeline = r.get("timeline", {})
        return f"{timeline[key]:.2f}" if key in timeline else "?"

    def supervisor_median(key: str) -> str:
        timelines = [p[key].get("timeline", {}) for p in data["pairs"]]
        found = [t["supervisor_s"] for t in timelines if "supervisor_s" in t]
        return f"{statistics.median(found):.2f}" if found else "?"

    for i, pair in enumerate(data["pairs"], 1):
        base, this = pair["base"], pair["this"]
        loads = f"{base['load_1m']:.1f} / {this['load_1m']:.1f}"
        over = f"{this['ready_s'] / base['ready_s']:.2f}"
        forked = f"{moment(base, 'supervisor_s')} / {moment(this, 'supervisor_s')}"
        asked = f"{moment(base, 'others_s')} / {moment(this, 'others_s')}"
        table.add(str(i), shown(base), shown(this), over, loads, forked, asked)
    table.add(
        "median",
        f"{data['base_ready_s_median']:.2f} ({data['base_ratio_median']:.2f}x)",
        f"{data['this_ready_s_median']:.2f} ({data['this_ratio_median']:.2f}x)",
        f"{data['this_over_base_median']:.2f}",
        "",
        f"{supervisor_median('base')} / {supervisor_median('this')}",
        "",
    )
    return table


def resume_round(bench: Bench, i: int) -> dict[str, Any]:
    """From `asyncrpc start b` (b killed while its step waits on c) to the flow's result."""
    run_dir = bench.log_dir / f"resume-{i}"
    delay = bench.sizes.recovery_delay
    launched = Launched(run_dir, {**bench.procs.base_env, config.ENV_RUN_DIR: str(run_dir)})
    try:
        env, _ = up_detached(bench, run_dir, AWAIT_CHAIN.name, "--delay", f"c={delay:g}")
        launched.remember()
        state = RunDir(run_dir).read_state()
        assert state is not None and state.snapshot.gateway_url is not None
        caller = FlowCaller(state.snapshot.gateway_url, state.snapshot.server_url)
        invocation = f"startup-resume-{i}-{time.time_ns()}"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            began = time.monotonic()
            result = pool.submit(caller.call, AWAIT_CHAIN, invocation, READY_TIMEOUT)
            time.sleep(delay / 2)  # b's step now waits on c's, which sleeps durably
            timed_cli(env, "kill", "b")
            wait_until(
                lambda: time.monotonic() > began + delay + 0.5, timeout=delay + 5, what="c's step"
            )
            started = time.monotonic()
            timed_cli(env, "start", "b")
            answer = result.result(timeout=READY_TIMEOUT)
            elapsed = time.monotonic() - started
        if answer.result != AWAIT_CHAIN.expected_result:
            raise BenchError(f"await-chain answered {answer.result!r}")
        return {"ready_s": round(elapsed, 3)}
    finally:
        launched.remember()
        launched.stop()


def timed_rounds(
    bench: Bench, how: str, one_round: Callable[[Bench, int], dict[str, Any]]
) -> dict[str, Any]:
    """``startup_rounds`` runs one way: each one's numbers, and the median of each number."""
    rounds = []
    for i in range(bench.sizes.startup_rounds):
        bench.say(f"start-up: {how}, round {i + 1}/{bench.sizes.startup_rounds}")
        rounds.append(one_round(bench, i))
    numbers = [key for key, value in rounds[0].items() if isinstance(value, int | float)]
    medians = {f"{key}_median": statistics.median(r[key] for r in rounds) for key in numbers}
    return {"rounds": rounds, **medians}


#: (what, key in the launcher's medians, at most: seconds, or times one import when a ratio)
TARGETS: tuple[tuple[str, str, float, bool], ...] = (
    ("up --detach, all ready", "ready_s_median", 3.0, True),
    ("kill -9 of b.1 to its replacement ready", "respawn_s_median", 0.2, False),
    ("asyncrpc status", "status_s_median", 0.25, False),
    ("asyncrpc kill c", "kill_s_median", 0.25, False),
    ("asyncrpc call await-chain (flow included)", "call_s_median", 0.25, False),
)


def targets_table(data: dict[str, Any]) -> Table:
    """Each target against what was measured: `met`, or by how much it is missed."""
    table = Table("Start-up targets", ["what", "measured s", "x import", "target", "met"])
    one_import = data["launcher"]["import_s_median"]
    rows = [(what, data["launcher"].get(key), limit, ratio) for what, key, limit, ratio in TARGETS]
    if "resume" in data:
        resume = data["resume"]["ready_s_median"]
        rows.append(("start b to the flow's result", resume, 1.0, False))
    for what, measured, limit, ratio in rows:
        if measured is None:
            continue
        times = measured / one_import
        shown = f"≤ {limit:g}x import" if ratio else f"≤ {limit:g} s"
        met = (times if ratio else measured) <= limit
        table.add(what, secs(measured), f"{times:.1f}", shown, "yes" if met else "no")
    return table


def run(bench: Bench) -> PartResult:
    result = PartResult("startup")
    table = Table(
        f"Start-up of server + gateway + 9 nodes (median of {bench.sizes.startup_rounds})",
        ["how", "to ready s", "RSS MiB (sum)", "PSS MiB (sum)", "processes"],
    )
    ways: list[tuple[str, str, Callable[[Bench, int], dict[str, Any]]]] = [
        ("direct", "processes started directly", direct_round)
    ]
    unavailable = launcher_unavailable(bench)
    if unavailable:
        result.data["launcher"] = {"skipped": unavailable}
        result.notes.append(f"asyncrpc up --detach: not measured ({unavailable})")
    else:
        compiled = compile_like_the_sdk(Path(__file__).resolve().parent.parent)
        result.data["bytecode"] = {"sdk": sdk_has_bytecode(), "project_compiled": compiled}
        if not compiled:
            result.notes.append(
                "the SDK's installed files have no bytecode: every process compiles what it "
                "imports (`uv sync --compile-bytecode` compiles them once)"
            )
        spawned = functools.partial(launcher_round, template=False)
        ways.append(("spawned", f"asyncrpc up --detach, {config.ENV_TEMPLATE}=0", spawned))
        ways.append(("launcher", "asyncrpc up --detach (template)", launcher_round))
    for key, how, one_round in ways:
        measured = result.data[key] = timed_rounds(bench, how, one_round)
        ready, rss = measured["ready_s_median"], measured["rss_bytes_median"]
        pss = measured["pss_bytes_median"]
        table.add(how, secs(ready), mib(rss), mib(pss), measured["rounds"][0]["processes"])
    sample = result.data["direct"]["rounds"][0]["rss_by_process_bytes"]
    result.notes.append(
        "RSS per process (first round): "
        + ", ".join(f"{name} {mib(size)}" for name, size in sample.items())
        + " MiB"
    )
    result.tables.append(table)
    if not unavailable:
        result.data["resume"] = timed_rounds(bench, "start b mid-flow", resume_round)
        launcher = result.data["launcher"]
        result.notes.append(
            "Memory of `up` (supervisor, template and replicas, medians): "
            f"RSS {mib(launcher['rss_bytes_median'])}, PSS {mib(launcher['pss_bytes_median'])}, "
            f"USS {mib(launcher['uss_bytes_median'])} MiB"
        )
        result.notes.append(
            f"Next to the template rounds: one SDK import {secs(launcher['import_s_median'])} s, "
            f"a bare two-command Typer CLI {secs(launcher['typer_floor_s_median'])} s"
        )
        result.tables.append(targets_table(result.data))
        result.tables.append(forks_table(result.data))
        if bench.sizes.startup_base:
            revision = bench.sizes.startup_base
            compared = against_base(bench, revision, base_code(bench, revision))
            result.data["against_base"] = compared
            result.tables.append(against_base_table(compared))
    return result


def forks_table(data: dict[str, Any]) -> Table:
    """Per replica of `up --detach` (template), from its fork until it was ready, each round."""
    rounds = [r["ready_after_fork_s"] for r in data["launcher"]["rounds"]]
    names = sorted({name for r in rounds for name in r})
    table = Table(
        "`up --detach` (template): each replica from its fork until ready "
        "(server: listening; others: poll stream connected), s per round",
        ["replica", "s per round", "median s"],
    )
    for name in names:
        values = [r[name] for r in rounds if name in r]
        table.add(name, " ".join(f"{v:.2f}" for v in values), f"{statistics.median(values):.2f}")
    return table
