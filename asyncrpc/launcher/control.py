"""The control API, client side: how `status`, `kill`, `start`, `down`... reach the launcher.

The launcher serves a tiny HTTP API on 127.0.0.1 (a random free port, see
:mod:`asyncrpc.launcher.control_api`) and writes its address and a random token
into the run directory's state file. A command from any terminal reads that
file (:func:`connect`) and calls the API with the token in the
``X-Asyncrpc-Token`` header. Endpoints (JSON in, JSON out; errors are
``{"error": ..., "exit_code": ...}`` with a 4xx status):

- ``GET /status``: the supervisor's snapshot.
- ``POST /kill`` ``{"target": "b.2", "signal": "KILL"}`` -> ``{"killed": [...]}``.
- ``POST /start`` ``{"target": "b", "delay": null, "add": false}``
  -> ``{"started": [...], "already_running": [...]}``.
- ``POST /restart`` ``{"target": "b"}`` -> ``{"restarted": [...]}``.
- ``POST /down`` -> ``{"stopped": [...]}``; the launcher then exits.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from asyncrpc.launcher.errors import LauncherError, NothingRunning
from asyncrpc.launcher.pids import ProcessRef
from asyncrpc.launcher.rundir import RunDir

TOKEN_HEADER = "X-Asyncrpc-Token"
HOW_TO_START = (
    "Start everything with `asyncrpc up` (or `asyncrpc up --detach` to get the prompt back)."
)


def new_token() -> str:
    return secrets.token_urlsafe(16)


def token_matches(given: str, token: str) -> bool:
    return secrets.compare_digest(given, token)


@dataclass
class ControlClient:
    """Talks to a running launcher's control API."""

    url: str
    token: str
    launcher: ProcessRef
    run_dir: RunDir

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = httpx.request(
                method,
                f"{self.url}{path}",
                json=body,
                headers={TOKEN_HEADER: self.token},
                timeout=120.0,
                trust_env=False,
            )
        except httpx.HTTPError as error:
            raise LauncherError(
                f"the launcher (pid {self.launcher.pid}) did not answer at {self.url}: {error}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text}
        if response.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            code = data.get("exit_code") if isinstance(data, dict) else None
            raise LauncherError(message or f"launcher error {response.status_code}", code)
        return data

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/status")

    def kill(self, target: str, sig: str = "KILL") -> list[str]:
        return self._request("POST", "/kill", {"target": target, "signal": sig})["killed"]

    def start(self, target: str, delay: float | None = None, add: bool = False) -> dict[str, Any]:
        return self._request("POST", "/start", {"target": target, "delay": delay, "add": add})

    def restart(self, target: str) -> list[str]:
        return self._request("POST", "/restart", {"target": target})["restarted"]

    def down(self, timeout: float = 30.0) -> list[str]:
        """Stop everything and wait until the launcher process itself has exited."""
        stopped = self._request("POST", "/down")["stopped"]
        wait_gone(self.launcher, timeout)
        return stopped


def wait_gone(
    ref: ProcessRef, timeout: float, sleeper: Callable[[float], None] = time.sleep
) -> bool:
    deadline = time.monotonic() + timeout
    while ref.alive():
        if time.monotonic() > deadline:
            return False
        sleeper(0.05)
    return True


def launcher_ref(state: dict[str, Any]) -> ProcessRef | None:
    launcher = state.get("launcher")
    if not isinstance(launcher, dict):
        return None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        return ProcessRef.from_json(launcher)
    return None


def orphans(state: dict[str, Any]) -> list[tuple[str, ProcessRef]]:
    """Processes listed in a state file that still run (the same processes, by start time)."""
    found = []
    for node in state.get("nodes", []):
        if node.get("pid") and node.get("pid_started"):
            ref = ProcessRef(int(node["pid"]), str(node["pid_started"]))
            if ref.alive():
                found.append((node["name"], ref))
    return found


def connect(run_dir: RunDir) -> ControlClient:
    """The running launcher of ``run_dir``, or NothingRunning saying how to start one."""
    state = run_dir.read_state()
    if state is None:
        raise NothingRunning(f"nothing is running (no launcher in {run_dir.path}). {HOW_TO_START}")
    ref = launcher_ref(state)
    if ref is None or not ref.alive():
        left = orphans(state)
        pid = f" (pid {ref.pid})" if ref else ""
        if left:
            names = ", ".join(name for name, _ in left)
            raise NothingRunning(
                f"the launcher{pid} in {run_dir.path} is no longer running, but processes it "
                f"started still are: {names}. Stop them with `asyncrpc down`, then {HOW_TO_START}"
            )
        raise NothingRunning(
            f"nothing is running: the launcher{pid} in {run_dir.path} has exited. {HOW_TO_START}"
        )
    return ControlClient(str(state["control_url"]), str(state["token"]), ref, run_dir)


def stop_orphans(
    run_dir: RunDir, grace: float = 5.0, sleeper: Callable[[float], None] = time.sleep
) -> list[str]:
    """`down` without a launcher: stop what its state file lists (checked by pid + start time)."""
    state = run_dir.read_state()
    if state is None:
        return []
    left = orphans(state)
    ref = launcher_ref(state)
    if ref is not None and ref.alive():
        left.append(("launcher", ref))
    for name, process in left:
        process.signal(signal.SIGTERM, group=name != "launcher")
    deadline = time.monotonic() + grace
    while any(process.alive() for _, process in left) and time.monotonic() < deadline:
        sleeper(0.05)
    for name, process in left:
        process.signal(signal.SIGKILL, group=name != "launcher")
    for _, process in left:
        wait_gone(process, 5.0, sleeper)
    run_dir.clear_state()
    return [name for name, _ in left]


def control_state(
    *, launcher: ProcessRef, control_url: str | None, token: str, snapshot: dict[str, Any]
) -> dict[str, Any]:
    """What the launcher writes to the state file."""
    return {
        "launcher": launcher.to_json(),
        "control_url": control_url,
        "token": token,
        **snapshot,
    }
