"""What the supervisor reports about itself and its replicas, as typed records.

The supervisor builds a :class:`LauncherSnapshot` (one :class:`ReplicaStatus`
per replica); the control server sends it, `asyncrpc status --json` prints it,
and the run directory's ``launcher.json`` holds it inside a :class:`RunState`
(plus the supervisor's own process, the control server's address and token,
and the dashboard's sign-in secret). JSON is made and read here only, so
every other module works with these records and the :class:`ReplicaState` /
:class:`Phase` enums.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from asyncrpc.supervise.pids import ProcessRef


class ReplicaState(StrEnum):
    """Where one replica is in its life."""

    NEW = "new"  # planned, never started
    STARTING = "starting"  # its process runs, not ready yet
    RUNNING = "running"  # ready: answering its health URL or past its ready line
    KILLED = "killed"  # ended by a signal it did not ask for (`asyncrpc kill`, a crash)
    EXITED = "exited"  # ended by itself
    STOPPED = "stopped"  # stopped by the supervisor (`down`, `restart`)

    @property
    def is_up(self) -> bool:
        return self in (ReplicaState.STARTING, ReplicaState.RUNNING)

    @property
    def ended(self) -> bool:
        return self in (ReplicaState.KILLED, ReplicaState.EXITED)


class Phase(StrEnum):
    """Where the supervisor is: booting its plan, serving, failed to boot, or stopping."""

    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


@dataclass(frozen=True)
class StartResult:
    """What `asyncrpc start` did: replicas it started, and matches that already ran."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    #: The pid of each replica named above.
    pids: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StartResult:
        return cls(list(data["started"]), list(data["already_running"]), dict(data["pids"]))


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica as `asyncrpc status` shows it."""

    name: str  # `server`, `gateway`, `b.1`
    node: str
    replica: int
    group: str | None
    id: str | None  # the Resonate id the process runs under, e.g. `b-1-84ac`
    pid: int | None
    pid_started: str | None
    state: ReplicaState
    uptime: float | None
    restarts: int
    exit_code: int | None
    delay: float | None
    log: str

    @property
    def process(self) -> ProcessRef | None:
        """The process this status names, checked by pid and start time before any signal."""
        if self.pid and self.pid_started:
            return ProcessRef(self.pid, self.pid_started)
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplicaStatus:
        values: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        values["state"] = ReplicaState(data["state"])
        return cls(**values)


@dataclass(frozen=True)
class LauncherSnapshot:
    """The supervisor, its server and gateway, and every replica, at one moment."""

    phase: Phase
    error: str | None
    run_dir: str
    server_url: str
    server_embedded: bool
    gateway_url: str | None
    respawn: float | None
    replicas: list[ReplicaStatus]
    dashboard_url: str | None = None

    def replica(self, name: str) -> ReplicaStatus | None:
        return next((status for status in self.replicas if status.name == name), None)

    def of_node(self, node: str) -> ReplicaStatus | None:
        """The first replica of ``node``, if any."""
        return next((status for status in self.replicas if status.node == node), None)

    def running_nodes(self) -> set[str]:
        return {s.node for s in self.replicas if s.state is ReplicaState.RUNNING}

    def to_json(self) -> dict[str, Any]:
        """The shape `asyncrpc status --json` prints (replicas under ``nodes``)."""
        return {
            "phase": str(self.phase),
            "error": self.error,
            "run_dir": self.run_dir,
            "server_url": self.server_url,
            "server_embedded": self.server_embedded,
            "gateway_url": self.gateway_url,
            "respawn": self.respawn,
            "dashboard": self.dashboard_url,
            "nodes": [status.to_json() for status in self.replicas],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LauncherSnapshot:
        return cls(
            phase=Phase(data["phase"]),
            error=data.get("error"),
            run_dir=str(data["run_dir"]),
            server_url=str(data["server_url"]),
            server_embedded=bool(data["server_embedded"]),
            gateway_url=data.get("gateway_url"),
            respawn=data.get("respawn"),
            replicas=[ReplicaStatus.from_json(item) for item in data.get("nodes", [])],
            dashboard_url=data.get("dashboard"),
        )


def sign_in_url(dashboard_url: str, secret: str) -> str:
    """The dashboard's address that signs a browser in: its page trades ``secret`` for a session.

    The secret rides in the fragment, which a browser never sends in a request,
    and the page drops it from the address at once.
    """
    return f"{dashboard_url}#token={quote(secret, safe='')}"


@dataclass(frozen=True)
class RunState:
    """The run directory's ``launcher.json``: how to reach the supervisor, and its snapshot.

    The file is private to the user who ran `up` (0600): it holds the control
    server's ``token`` and the dashboard's sign-in secret (``dashboard_token``,
    None without a dashboard), which exist nowhere else on disk.
    """

    supervisor: ProcessRef
    control_url: str
    token: str
    snapshot: LauncherSnapshot
    dashboard_token: str | None = None

    def processes(self) -> list[tuple[str, ProcessRef]]:
        """(replica name, process) for every replica with a recorded process."""
        return [(s.name, s.process) for s in self.snapshot.replicas if s.process is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "launcher": self.supervisor.to_json(),
            "control_url": self.control_url,
            "token": self.token,
            "dashboard_token": self.dashboard_token,
            **self.snapshot.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> RunState | None:
        """The state, or None when ``data`` is not a state file this version wrote."""
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
            return cls(
                supervisor=ProcessRef.from_json(data["launcher"]),
                control_url=str(data["control_url"]),
                token=str(data["token"]),
                snapshot=LauncherSnapshot.from_json(data),
                dashboard_token=data.get("dashboard_token"),
            )
        return None
