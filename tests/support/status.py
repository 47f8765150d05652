"""Status records as a supervisor writes them, filled in for tests."""

from __future__ import annotations

from asyncrpc.lesson import topology
from asyncrpc.supervise.status import LauncherSnapshot, Phase, ReplicaState, ReplicaStatus


def replica_status(
    name: str, state: ReplicaState, pid: int | None = None, started: str = ""
) -> ReplicaStatus:
    node, _, number = name.partition(".")
    return ReplicaStatus(
        name=name,
        node=node,
        replica=int(number or 1),
        group=topology.NODES[node].group if node in topology.NODES else None,
        id=f"{node}-1-abcd" if pid else None,
        pid=pid,
        pid_started=started or None,
        state=state,
        uptime=1.5 if state is ReplicaState.RUNNING else None,
        restarts=0,
        exit_code=-9 if state is ReplicaState.KILLED else None,
        delay=None,
        log=f"/tmp/logs/{name}.log",
    )


def snapshot_of(*replicas: ReplicaStatus) -> LauncherSnapshot:
    return LauncherSnapshot(
        phase=Phase.READY,
        error=None,
        run_dir="/tmp/run",
        server_url="http://127.0.0.1:8001",
        server_embedded=True,
        gateway_url="http://127.0.0.1:5000",
        respawn=None,
        replicas=list(replicas),
    )
