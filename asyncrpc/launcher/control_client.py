"""The control client: how `status`, `kill`, `start`, `down`... reach the supervisor.

The supervisor serves its control server on 127.0.0.1 (a random free port, see
:mod:`asyncrpc.launcher.control_server`) and writes its address and a random
token into the run directory's state file. A command from any terminal reads
that file (:func:`connect`) and calls the control server with the token in the
``X-Asyncrpc-Token`` header. Endpoints (JSON in, JSON out; errors are
``{"error": ..., "exit_code": ...}`` with a 4xx status):

- ``GET /status``: the supervisor's snapshot (:class:`~asyncrpc.launcher.status.LauncherSnapshot`).
- ``POST /kill`` ``{"node": "b.2", "signal": "KILL"}`` -> ``{"killed": [...]}``.
- ``POST /start`` ``{"node": "b", "delay": null, "add": false}``
  -> ``{"started": [...], "already_running": [...]}``.
- ``POST /restart`` ``{"node": "b"}`` -> ``{"restarted": [...]}``.
- ``POST /down`` -> ``{"stopped": [...]}``; the supervisor then exits.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncrpc.launcher.errors import LauncherError, NothingRunning
from asyncrpc.launcher.pids import ProcessRef
from asyncrpc.launcher.rundir import RunDir
from asyncrpc.launcher.status import LauncherSnapshot, RunState, StartResult

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
    """Talks to a running supervisor's control server."""

    url: str
    token: str
    supervisor: ProcessRef
    run_dir: RunDir

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        # http.client, not httpx: every command pays for this import, and it is a tenth as slow.
        address = urllib.parse.urlsplit(self.url)
        headers = {TOKEN_HEADER: self.token}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120.0)
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            status, text = response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            raise LauncherError(
                f"the supervisor (pid {self.supervisor.pid}) did not answer at {self.url}: {error}"
            ) from None
        finally:
            connection.close()
        try:
            data = json.loads(text)
        except ValueError:
            data = {"error": text}
        if status >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            code = data.get("exit_code") if isinstance(data, dict) else None
            raise LauncherError(message or f"supervisor error {status}", code)
        return data

    def status(self) -> LauncherSnapshot:
        return LauncherSnapshot.from_json(self._request("GET", "/status"))

    def kill(self, node: str, sig: str = "KILL") -> list[str]:
        """Signal ``node`` (`b`, `b.2`); the names of the replicas signalled."""
        return self._request("POST", "/kill", {"node": node, "signal": sig})["killed"]

    def start(self, node: str, delay: float | None = None, add: bool = False) -> StartResult:
        body = {"node": node, "delay": delay, "add": add}
        return StartResult.from_json(self._request("POST", "/start", body))

    def restart(self, node: str) -> list[str]:
        return self._request("POST", "/restart", {"node": node})["restarted"]

    def down(self, timeout: float = 30.0) -> list[str]:
        """Stop everything and wait until the supervisor process itself has exited."""
        stopped = self._request("POST", "/down")["stopped"]
        wait_gone(self.supervisor, timeout)
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


def orphans(state: RunState) -> list[tuple[str, ProcessRef]]:
    """Replicas listed in a state file that still run (the same processes, by start time)."""
    return [(name, process) for name, process in state.processes() if process.alive()]


def connect(run_dir: RunDir) -> ControlClient:
    """The running supervisor of ``run_dir``, or NothingRunning saying how to start one."""
    state = run_dir.read_state()
    if state is None:
        raise NothingRunning(
            f"nothing is running (no supervisor in {run_dir.path}). {HOW_TO_START}"
        )
    ref = state.supervisor
    if not ref.alive():
        left = orphans(state)
        pid = f" (pid {ref.pid})"
        if left:
            names = ", ".join(name for name, _ in left)
            raise NothingRunning(
                f"the supervisor{pid} in {run_dir.path} is no longer running, but processes it "
                f"started still are: {names}. Stop them with `asyncrpc down`, then {HOW_TO_START}"
            )
        raise NothingRunning(
            f"nothing is running: the supervisor{pid} in {run_dir.path} has exited. {HOW_TO_START}"
        )
    return ControlClient(state.control_url, state.token, ref, run_dir)


def is_running(run_dir: RunDir) -> bool:
    """True while a supervisor answers for ``run_dir`` (by its state file and process)."""
    try:
        connect(run_dir)
    except LauncherError:
        return False
    return True
