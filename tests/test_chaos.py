"""Chaos: random SIGKILLs of any process, the server included, while 50 flows are in flight,
and one round that stops a replica with SIGSTOP and resumes it later.

Run it alone with `uv run pytest -m chaos -s`. The seed is printed at the start
and in every failure message; replay a run with CHAOS_SEED=<seed>.

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
import json
import os
import random
import re
import signal
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from asyncrpc.topology import FLOWS, NODES, find_flow
from harness.isolation import free_port
from harness.processes import ASYNCRPC, Process, Processes
from harness.system import start_node, wait_ready
from harness.waiting import http_ok, wait_until

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


class Chaos:
    """The system under test, and a record of what was killed."""

    def __init__(self, procs: Processes, seed: int, db: str) -> None:
        self.procs = procs
        self.rng = random.Random(seed)
        self.seed = seed
        self.db = db
        self.server_port = free_port()
        self.gateway_port = free_port()
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.live: dict[str, Process] = {}
        self.every: list[Process] = []
        self.kills: Counter[str] = Counter()
        self.stops: Counter[str] = Counter()
        self.generation = 0

    def start(self, name: str) -> Process:
        self.generation += 1
        if name == "server":
            process, _ = self.procs.start_server(db=self.db, port=self.server_port)
        elif name == "gateway":
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
        return process

    def kill(self, name: str) -> None:
        self.live[name].kill(signal.SIGKILL)
        self.kills[name] += 1

    def start_standby(self, name: str) -> Process:
        """A second replica of ``name``, which takes its work while the first is stopped."""
        extra = ["--ttl", TTL, "--id", f"{name}-standby"]
        process = start_node(self.procs, name, self.server_url, *extra)
        self.every.append(process)
        return process

    def stop_and_resume(self, name: str) -> None:
        """SIGSTOP the replica of ``name`` for a few seconds, then SIGCONT it."""
        process = self.live[name]
        process.kill(signal.SIGSTOP)
        self.stops[name] += 1
        try:
            time.sleep(self.rng.uniform(*STOP_S))
        finally:
            process.kill(signal.SIGCONT)

    def post(self, flow_name: str, invocation_id: str) -> None:
        """Start an invocation, retrying while the gateway is being replaced."""
        flow = find_flow(flow_name)
        assert flow is not None
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.post(
                    f"{self.gateway_url}{flow.route}",
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
        response = httpx.post(f"{self.server_url}/", json=envelope, timeout=10)
        return response.json()["data"]["promises"]


def decode(value: dict[str, Any] | None) -> Any:
    if not value or not value.get("data"):
        return None
    return json.loads(base64.b64decode(value["data"]))


def function_of(record: dict[str, Any]) -> str | None:
    param = decode(record.get("param"))
    return param.get("func") if isinstance(param, dict) else None


def test_flows_survive_random_kills(procs: Processes, tmp_path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", str(time.time_ns() % 2**31)))
    print(f"\nchaos seed={seed} (replay with CHAOS_SEED={seed})", flush=True)
    chaos = Chaos(procs, seed, str(tmp_path / "chaos.db"))
    chaos.start("server")
    chaos.start("gateway")
    for name in NODES:
        chaos.start(name)
    stopped_node = chaos.rng.choice(list(LEAVES.values()))
    standby = chaos.start_standby(stopped_node)
    wait_ready(standby, *(chaos.live[name] for name in ("gateway", *NODES)))
    wait_until(lambda: http_ok(f"{chaos.gateway_url}/healthz"), 60, "the gateway")

    rng = chaos.rng
    invocations = [(f"chaos-{seed}-{i}", rng.choice(list(FLOWS))) for i in range(INVOCATIONS)]
    waves = [invocations[i::ROUNDS] for i in range(ROUNDS)]
    # Every run kills the server, the gateway and a leaf's node at least once; the rest is chance.
    everyone = ["server", "gateway", *NODES]
    victims = ["server", "gateway", rng.choice(list(LEAVES.values()))]
    victims += [rng.choice(everyone) for _ in range(ROUNDS - len(victims) - 1)]
    victims.append(STOP)
    rng.shuffle(victims)
    for wave, victim in zip(waves, victims, strict=True):
        for invocation_id, flow_name in wave:
            chaos.post(flow_name, invocation_id)
        time.sleep(rng.uniform(0.1, 1.5))
        if victim == STOP:
            print(f"chaos: kill -STOP {stopped_node}, then -CONT", flush=True)
            chaos.stop_and_resume(stopped_node)
            continue
        print(f"chaos: kill -9 {victim}", flush=True)
        chaos.kill(victim)
        time.sleep(rng.uniform(0.2, 2.0))
        chaos.start(victim)
        if victim == "server":
            wait_until(lambda: http_ok(f"{chaos.server_url}/healthz"), 30, "the server")

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
    for process in chaos.every:
        for match in RUN_LINE.finditer(process.output()):
            function = match.group(2) or match.group(3)
            if function in LEAVES:
                runs[(function, match.group(1))] += 1
    assert runs, f"seed={seed}: no leaf runs were logged"
    for (function, promise_id), count in runs.items():
        group = LEAVES[function]
        bound = 1 + chaos.kills[group] + chaos.stops[group] + chaos.kills["server"]
        assert count <= bound, (
            f"seed={seed}: {function} {promise_id} ran {count} times; bound {bound} "
            f"(kills: {dict(chaos.kills)}, stops: {dict(chaos.stops)})"
        )
    summary = f"kills={dict(chaos.kills)} stops={dict(chaos.stops)}"
    print(f"chaos: {summary} max leaf runs={max(runs.values())}", flush=True)
