"""What one `up` runs: the replicas, their ports and options, and their command lines.

A :class:`Plan` is plain data (saved as JSON for a detached supervisor). It
knows how to spell each replica's command line (`python -m asyncrpc
server|node ...`) and how to tell it is ready (an HTTP health URL, else the
READY_MARKER line). The supervisor runs whatever the plan says, so tests can
give it a stand-in ``program``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asyncrpc.lesson import topology
from asyncrpc.runtime import config
from asyncrpc.supervise.rundir import RunDir

ASYNCRPC_PROGRAM: tuple[str, ...] = (sys.executable, "-m", "asyncrpc")
#: The template's module (:mod:`asyncrpc.entrypoints.template`): how it is started, and how
#: its process is recognised. Here rather than with its client, which needs asyncio: `up
#: --detach` starts it before loading that.
TEMPLATE_MODULE = "asyncrpc.entrypoints.template"


def template_enabled(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Fork from a template on Linux unless ASYNCRPC_TEMPLATE=0.

    macOS and Windows lack a fork that is safe after importing the SDK's
    dependencies (Objective-C runtime, no fork at all), so they spawn.
    """
    return platform.startswith("linux") and env.get(config.ENV_TEMPLATE, "1") != "0"


#: What Postgres prints once it accepts connections.
POSTGRES_READY = "database system is ready to accept connections"


@dataclass(frozen=True, order=True)
class ReplicaSpec:
    """One replica the supervisor runs: of the server, the gateway or a worker node."""

    node: str
    replica: int = 1

    @property
    def is_worker(self) -> bool:
        return self.node in topology.NODES

    @property
    def name(self) -> str:
        """`server`, `gateway`, `b.1`: the name in tables, prefixes and log file names."""
        return f"{self.node}.{self.replica}" if self.is_worker else self.node

    @property
    def group(self) -> str | None:
        if self.node == topology.GATEWAY:
            return topology.GATEWAY_GROUP
        node = topology.NODES.get(self.node)
        return node.group if node else None

    @property
    def order(self) -> tuple[int, int]:
        """Start order: server, gateway, then a..i; replicas in turn."""
        return topology.PROCESS_NAMES.index(self.node), self.replica


@dataclass
class Plan:
    """Everything a supervisor needs to start, watch and restart its replicas."""

    run_dir: Path
    server_url: str
    embedded_server: bool
    server_port: int = config.DEFAULT_SERVER_PORT
    gateway_port: int = config.DEFAULT_GATEWAY_PORT
    #: Where the supervisor process serves the dashboard; None: no dashboard.
    dashboard_port: int | None = None
    host: str = config.DEFAULT_HOST
    replicas: list[ReplicaSpec] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    ttl: float | None = None
    respawn: float | None = None
    ready_timeout: float = 30.0
    program: tuple[str, ...] = ASYNCRPC_PROGRAM
    #: resonate.sql, when the server this plan runs is the `postgres` node.
    postgres_schema: str | None = None

    @property
    def server_node(self) -> str | None:
        """The node that is the server when this plan runs one (`server`, `postgres`)."""
        if not self.embedded_server:
            return None
        return topology.POSTGRES if self.postgres_schema else topology.SERVER

    @property
    def rundir(self) -> RunDir:
        return RunDir(self.run_dir)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def dashboard_url(self) -> str | None:
        return f"http://{self.host}:{self.dashboard_port}/" if self.dashboard_port else None

    def command(
        self, spec: ReplicaSpec, resonate_id: str, delay: float | None, env: Mapping[str, str]
    ) -> list[str]:
        """The command line that runs the replica ``spec`` as ``resonate_id``.

        Secrets never go here: any local user can read a command line (`ps`). The
        replica finds RESONATE_TOKEN in ``env``, the environment it is started with.
        """
        if spec.node == topology.POSTGRES:
            return [
                *self.program,
                "postgres",
                "--data",
                str(self.rundir.postgres_data),
                "--host",
                self.host,
                "--port",
                str(self.server_port),
                "--schema",
                str(self.postgres_schema),
            ]
        if spec.node == topology.SERVER:
            command = [
                *self.program,
                "server",
                "--host",
                self.host,
                "--port",
                str(self.server_port),
            ]
            return [*command, "--db", str(self.rundir.db)]
        command = [*self.program, "node", spec.node, "--server-url", self.server_url]
        command += ["--id", resonate_id]
        if spec.node == topology.GATEWAY:
            return [*command, "--host", self.host, "--port", str(self.gateway_port)]
        if delay is not None:
            command += ["--delay", f"{delay:g}"]
        if self.ttl is not None:
            command += ["--ttl", f"{self.ttl:g}"]
        return command

    def ready_url(self, spec: ReplicaSpec) -> str | None:
        """The health URL that says ``spec`` is ready; None means: wait for READY_MARKER."""
        if spec.node == topology.SERVER:
            return f"{self.server_url}/healthz"
        if spec.node == topology.GATEWAY:
            return f"{self.gateway_url}/healthz"
        return None

    def stop_signal(self, spec: ReplicaSpec) -> signal.Signals:
        """How to ask ``spec`` to stop: SIGTERM, but SIGINT for Postgres.

        Postgres takes SIGTERM as a "smart" shutdown that waits for every client
        to disconnect, and nodes elsewhere may never do; SIGINT is its "fast"
        shutdown, which ends their sessions and still writes a checkpoint.
        """
        return signal.SIGINT if spec.node == topology.POSTGRES else signal.SIGTERM

    def ready_marker(self, spec: ReplicaSpec) -> str:
        """The line in its log that says ``spec`` is ready, when it has no health URL."""
        return POSTGRES_READY if spec.node == topology.POSTGRES else config.READY_MARKER

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["replicas"] = [[spec.node, spec.replica] for spec in self.replicas]
        data["program"] = list(self.program)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        values = dict(data)
        values["run_dir"] = Path(values["run_dir"])
        values["replicas"] = [
            ReplicaSpec(node, int(replica)) for node, replica in values["replicas"]
        ]
        values["program"] = tuple(values["program"])
        return cls(**values)
