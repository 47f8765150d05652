"""Chaos: random SIGKILLs of any process, the server included, while 60 invocations are in
flight, and one round that stops a replica with SIGSTOP and resumes it later.

Run it alone with `uv run pytest -m chaos -s`. The seed is printed at the start
and in every failure message; replay a run with CHAOS_SEED=<seed>.

The same chaos runs against two systems: `direct`, where the test starts the
server, the gateway and every node as processes of its own, and `launcher`,
where `asyncrpc up --detach` starts them, each replica forked from the
launcher's template, and the test kills a replica by the pid the launcher
reports and brings it back with `asyncrpc start`, as a user would.

Afterwards every invocation must have completed with the right value (the
detached chain's `cog` must have stored 3), none may have ended rejected,
and no leaf function may have run more often than the semantics allow:

    runs(leaf invocation) <= 1 + kills and stops of that leaf's group + kills of the server

A leaf runs once; it runs again only when the process running it dies (or is
stopped past its lease) before reporting its result, or when its lease lapses
because the server was down longer than the lease (a kill of the server).

The stopped replica is the first of two of a leaf's node: while it is
stopped its stream stays open, and the server must notice that it takes no
work and send that work to the other replica.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil
import pytest

from asyncrpc.lesson.topology import FLOWS, GATEWAY, NODES, SERVER, find_flow
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import LauncherSnapshot, ReplicaState, ReplicaStatus
from harness.isolation import free_port, isolated_env
from harness.launched import Launched
from harness.processes import ASYNCRPC, Process, Processes, session
from harness.system import start_node, wait_ready
from harness.waiting import http_ok, probe_client, wait_until

pytestmark = pytest.mark.chaos

INVOCATIONS = 60
ROUNDS = 6
#: How long the stopped replica stays stopped: past its lease and the server's ack bound.
STOP_S = (3.0, 5.0)
#: Durable sleeps on the inner steps keep flows in flight while processes die.
DELAYS = {"b": 2.0, "e": 2.0, "g": 2.0}
TTL = "2"
LEAVES = {"baz": "c", "cog": "f", "rax": "h", "dop": "i"}
#: The round that stops a replica instead of killing a process.
STOP = "stop"
RUN_LINE = re.compile(r"\[([^\]]+)\] (?:running (\w+)|(cog) received)")
#: How `ps` shows the template the launcher forks every replica from.
TEMPLATE_MODULE = "asyncrpc.entrypoints.template"
#: Starting a dozen Python processes at once on two shared cores takes a while.
READY_TIMEOUT = 120.0


class System(Protocol):
    """The system under chaos: the server, the gateway and every node, one way or another.

    ``stopped_node`` (a leaf's node) runs two replicas; every other node one.
    Each method acts on a node's first replica.
    """

    server_url: str
    gateway_url: str

    def kill(self, name: str) -> None:
        """SIGKILL the node ``name``, returning once it is gone."""

    def start(self, name: str) -> None:
        """Bring the killed node ``name`` back."""

    def send(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` (SIGSTOP, SIGCONT) to the node ``name``."""

    def logs(self) -> list[str]:
        """The output of every process that ran a node, the replaced ones included."""


class DirectSystem:
    """Every process started by the test itself (harness.processes)."""

    def __init__(self, procs: Processes, tmp_path: Path, stopped_node: str) -> None:
        self.procs = procs
        self.db = str(tmp_path / "chaos.db")
        self.server_port = free_port()
        self.gateway_port = free_port()
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.live: dict[str, Process] = {}
        self.every: list[Process] = []
        self.generation = 0
        self.start(SERVER)
        self.start(GATEWAY)
        for name in NODES:
            self.start(name)
        extra = ["--ttl", TTL, "--id", f"{stopped_node}-standby"]
        standby = start_node(procs, stopped_node, self.server_url, *extra)
        self.every.append(standby)
        wait_ready(standby, *(self.live[name] for name in (GATEWAY, *NODES)))
        wait_until(lambda: http_ok(f"{self.gateway_url}/healthz"), 60, "the gateway")

    def start(self, name: str) -> None:
        self.generation += 1
        if name == SERVER:
            process, _ = self.procs.start_server(db=self.db, port=self.server_port)
        elif name == GATEWAY:
            process = self.procs.start(
                "gateway",
                [
                    *ASYNCRPC,
                    "node",
                    "gateway",
                    "--port",
                    str(self.gateway_port),
                    "--server-url",
                    self.server_url,
                ],
            )
        else:
            extra = ["--ttl", TTL, "--id", f"{name}-{self.generation}"]
            if name in DELAYS:
                extra += ["--delay", str(DELAYS[name])]
            process = start_node(self.procs, name, self.server_url, *extra)
        self.live[name] = process
        self.every.append(process)

    def kill(self, name: str) -> None:
        self.live[name].kill(signal.SIGKILL)

    def send(self, name: str, sig: signal.Signals) -> None:
        self.live[name].kill(sig)

    def logs(self) -> list[str]:
        return [process.output() for process in self.every]


@contextlib.contextmanager
def direct_system(tmp_path: Path, stopped_node: str) -> Iterator[DirectSystem]:
    with session(tmp_path / "logs", isolated_env(tmp_path / "run")) as procs:
        yield DirectSystem(procs, tmp_path, stopped_node)


class LaunchedSystem:
    """Everything started by `asyncrpc up --detach`, each replica forked from its template."""

    def __init__(self, launched: Launched, stopped_node: str) -> None:
        self.launched = launched
        self.rundir = RunDir(launched.run_dir)
        delays = [arg for node, s in DELAYS.items() for arg in ("--delay", f"{node}={s:g}")]
        self.asyncrpc(
            "up",
            "--detach",
            *("--server-port", str(free_port()), "--gateway-port", str(free_port())),
            *("--no-dashboard", "--ttl", TTL, *delays, "--scale", f"{stopped_node}=2"),
            *("--ready-timeout", f"{READY_TIMEOUT:g}"),
        )
        snapshot = self.snapshot()
        assert snapshot.gateway_url is not None
        self.server_url = snapshot.server_url
        self.gateway_url = snapshot.gateway_url
        self.template = self.find_template()
        names = {status.name for status in snapshot.replicas}
        expected = {SERVER, GATEWAY, *(f"{n}.1" for n in NODES), f"{stopped_node}.2"}
        assert names == expected, names
        for status in snapshot.replicas:
            self.assert_forked(status)

    def asyncrpc(self, *args: str) -> None:
        """Run `asyncrpc ARGS... --run-dir RUN_DIR`, as a user would; fail on an error."""
        result = subprocess.run(
            [*ASYNCRPC, *args, "--run-dir", str(self.rundir.path)],
            env=dict(self.launched.env),
            capture_output=True,
            text=True,
            timeout=2 * READY_TIMEOUT,
            check=False,
        )
        self.launched.remember()
        assert result.returncode == 0, f"asyncrpc {' '.join(args)}:\n{result.stdout}{result.stderr}"

    def snapshot(self) -> LauncherSnapshot:
        state = self.rundir.read_state()
        assert state is not None, f"no supervisor in {self.rundir.path}"
        return state.snapshot

    def find_template(self) -> psutil.Process:
        """The template: the supervisor's parent, and remembered so that it is stopped too."""
        state = self.rundir.read_state()
        assert state is not None
        template = psutil.Process(state.supervisor.pid).parent()
        assert template is not None and template.pid != state.supervisor.pid
        assert TEMPLATE_MODULE in " ".join(template.cmdline()), template.cmdline()
        ref = ProcessRef.of(template.pid)
        assert ref is not None
        self.launched.seen.add(ref)
        return template

    def assert_forked(self, status: ReplicaStatus) -> None:
        """``status`` runs, forked from the template rather than spawned by the supervisor
        (the server from the server template, which the template forked)."""
        assert status.state is ReplicaState.RUNNING, status
        assert status.pid is not None
        parent = psutil.Process(status.pid).parent()
        assert parent is not None, f"{status.name} (pid {status.pid}) has no parent"
        if status.name == SERVER:
            assert " ".join(parent.cmdline()).split()[-2:] == [TEMPLATE_MODULE, "--server"]
            parent = parent.parent()
            assert parent is not None, f"the server template of {status.name} has no parent"
        assert parent.pid == self.template.pid, (
            f"{status.name} (pid {status.pid}) is not forked from the template "
            f"(pid {self.template.pid})"
        )

    @staticmethod
    def replica_of(name: str) -> str:
        return name if name in (SERVER, GATEWAY) else f"{name}.1"

    def status(self, name: str) -> ReplicaStatus:
        status = self.snapshot().replica(self.replica_of(name))
        assert status is not None, f"the launcher lists no {self.replica_of(name)}"
        return status

    def process(self, name: str) -> ProcessRef:
        ref = self.status(name).process
        assert ref is not None and ref.alive(), f"{self.replica_of(name)} runs no process"
        return ref

    def kill(self, name: str) -> None:
        assert self.process(name).signal(signal.SIGKILL)
        wait_until(
            lambda: self.status(name).state.ended,
            30,
            f"the launcher to see {self.replica_of(name)} killed",
        )

    def start(self, name: str) -> None:
        self.asyncrpc("start", self.replica_of(name))
        self.assert_forked(self.status(name))

    def send(self, name: str, sig: signal.Signals) -> None:
        assert self.process(name).signal(sig)

    def logs(self) -> list[str]:
        return [self.rundir.log_for(name).read_text() for name in self.rundir.log_names()]


@contextlib.contextmanager
def launched_system(tmp_path: Path, stopped_node: str) -> Iterator[LaunchedSystem]:
    run_dir = tmp_path / "run"
    launched = Launched(run_dir, isolated_env(run_dir))
    try:
        yield LaunchedSystem(launched, stopped_node)
    finally:
        launched.stop()


SYSTEMS = {"direct": direct_system, "launcher": launched_system}


class Chaos:
    """The chaos on a system: what was killed and stopped, and how invocations are started."""

    def __init__(self, system: System, rng: random.Random, seed: int) -> None:
        self.system = system
        self.rng = rng
        self.seed = seed
        self.kills: Counter[str] = Counter()
        self.stops: Counter[str] = Counter()

    def kill_and_start(self, name: str) -> None:
        self.system.kill(name)
        self.kills[name] += 1
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.system.start(name)
        if name == SERVER:
            url = f"{self.system.server_url}/healthz"
            wait_until(lambda: http_ok(url), 30, "the server")

    def stop_and_resume(self, name: str) -> None:
        """SIGSTOP the first replica of ``name`` for a few seconds, then SIGCONT it."""
        self.system.send(name, signal.SIGSTOP)
        self.stops[name] += 1
        try:
            time.sleep(self.rng.uniform(*STOP_S))
        finally:
            self.system.send(name, signal.SIGCONT)

    def post(self, flow_name: str, invocation_id: str) -> None:
        """Start an invocation, retrying while the gateway is being replaced."""
        flow = find_flow(flow_name)
        assert flow is not None
        deadline = time.monotonic() + 60
        while True:
            try:
                response = probe_client().post(
                    f"{self.system.gateway_url}{flow.route}",
                    params={"id": invocation_id, **({"wait": 0} if flow.waits_for_result else {})},
                    timeout=10,
                )
                if response.status_code in (200, 202):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"seed={self.seed}: could not start {invocation_id}")
            time.sleep(0.2)

    def promises(self, origin: str) -> list[dict[str, Any]]:
        envelope = {
            "kind": "promise.search",
            "head": {"corrId": "chaos"},
            "data": {"tags": {"resonate:origin": origin}, "limit": 1000},
        }
        response = probe_client().post(f"{self.system.server_url}/", json=envelope, timeout=10)
        return response.json()["data"]["promises"]


def decode(value: dict[str, Any] | None) -> Any:
    if not value or not value.get("data"):
        return None
    return json.loads(base64.b64decode(value["data"]))


def function_of(record: dict[str, Any]) -> str | None:
    param = decode(record.get("param"))
    return param.get("func") if isinstance(param, dict) else None


@pytest.mark.parametrize("way", list(SYSTEMS))
def test_flows_survive_random_kills(way: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", str(time.time_ns() % 2**31)))
    print(f"\nchaos ({way}) seed={seed} (replay with CHAOS_SEED={seed})", flush=True)
    rng = random.Random(seed)
    stopped_node = rng.choice(list(LEAVES.values()))
    with SYSTEMS[way](tmp_path, stopped_node) as system:
        run_chaos(Chaos(system, rng, seed), stopped_node)


def run_chaos(chaos: Chaos, stopped_node: str) -> None:
    """Kill and stop at random while invocations start, then check how every one ended."""
    rng, seed = chaos.rng, chaos.seed
    invocations = [(f"chaos-{seed}-{i}", rng.choice(list(FLOWS))) for i in range(INVOCATIONS)]
    waves = [invocations[i::ROUNDS] for i in range(ROUNDS)]
    # Every run kills the server, the gateway and a leaf's node at least once; the rest is chance.
    everyone = [SERVER, GATEWAY, *NODES]
    killed = [SERVER, GATEWAY, rng.choice(list(LEAVES.values()))]
    killed += [rng.choice(everyone) for _ in range(ROUNDS - len(killed) - 1)]
    killed.append(STOP)
    rng.shuffle(killed)
    for wave, name in zip(waves, killed, strict=True):
        for invocation_id, flow_name in wave:
            chaos.post(flow_name, invocation_id)
        time.sleep(rng.uniform(0.1, 1.5))
        if name == STOP:
            print(f"chaos: kill -STOP {stopped_node}, then -CONT", flush=True)
            chaos.stop_and_resume(stopped_node)
        else:
            print(f"chaos: kill -9 {name}", flush=True)
            chaos.kill_and_start(name)

    def settled(invocation_id: str) -> dict[str, Any] | None:
        try:
            records = chaos.promises(invocation_id)
        except httpx.HTTPError:
            return None
        root = next((r for r in records if r["id"] == invocation_id), None)
        if root is None or root["state"] == "pending":
            return None
        flow = FLOWS[dict(invocations)[invocation_id]]
        if not flow.waits_for_result:
            cog = [r for r in records if function_of(r) == "cog"]
            if not cog or cog[0]["state"] == "pending":
                return None
        return {"root": root, "records": records}

    outcomes: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(outcomes) < len(invocations):
        for invocation_id, _ in invocations:
            if invocation_id not in outcomes and (outcome := settled(invocation_id)):
                outcomes[invocation_id] = outcome
        if time.monotonic() > deadline:
            missing = [i for i, _ in invocations if i not in outcomes]
            raise AssertionError(
                f"seed={seed}: {len(missing)} invocations never finished: {missing}"
            )
        time.sleep(0.5)

    for invocation_id, flow_name in invocations:
        outcome = outcomes[invocation_id]
        root = outcome["root"]
        assert root["state"] == "resolved", f"seed={seed}: {invocation_id} ended {root['state']}"
        rejected = [r["id"] for r in outcome["records"] if r["state"].startswith("rejected")]
        assert not rejected, f"seed={seed}: {invocation_id} has rejected steps {rejected}"
        if FLOWS[flow_name].waits_for_result:
            assert decode(root["value"]) == 3, f"seed={seed}: {invocation_id} = {root['value']}"
        else:
            (cog,) = [r for r in outcome["records"] if function_of(r) == "cog"]
            assert decode(cog["value"]) == 3, f"seed={seed}: cog of {invocation_id}"

    runs: Counter[tuple[str, str]] = Counter()
    for output in chaos.system.logs():
        for match in RUN_LINE.finditer(output):
            function = match.group(2) or match.group(3)
            if function in LEAVES:
                runs[(function, match.group(1))] += 1
    assert runs, f"seed={seed}: no leaf runs were logged"
    for (function, promise_id), count in runs.items():
        group = LEAVES[function]
        bound = 1 + chaos.kills[group] + chaos.stops[group] + chaos.kills[SERVER]
        assert count <= bound, (
            f"seed={seed}: {function} {promise_id} ran {count} times; bound {bound} "
            f"(kills: {dict(chaos.kills)}, stops: {dict(chaos.stops)})"
        )
    summary = f"kills={dict(chaos.kills)} stops={dict(chaos.stops)}"
    print(f"chaos: {summary} max leaf runs={max(runs.values())}", flush=True)
