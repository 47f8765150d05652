"""The control client: how `status`, `kill`, `start`, `down`... reach the supervisor.

The supervisor serves its control server on 127.0.0.1 (a random free port, see
:mod:`asyncrpc.supervise.control_server`) and writes its address and a random
token into the run directory's state file. A command from any terminal reads
that file (:func:`connect`) and calls the control server with the token in the
``X-Asyncrpc-Token`` header. Endpoints (JSON in, JSON out; errors are
``{"error": ..., "exit_code": ...}`` with a 4xx status):

- ``GET /status``: the supervisor's snapshot (:class:`~asyncrpc.supervise.status.LauncherSnapshot`).
- ``POST /kill`` ``{"node": "b.2", "signal": "KILL"}`` -> ``{"killed": [...]}``.
- ``POST /start`` ``{"node": "b", "delay": null, "add": false}``
  -> ``{"started": [...], "already_running": [...]}``.
- ``POST /restart`` ``{"node": "b"}`` -> ``{"restarted": [...]}``.
- ``POST /down`` -> ``{"stopped": [...]}``; the supervisor then exits.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncrpc.runtime import local_http
from asyncrpc.runtime.errors import CommandError, NothingRunning
from asyncrpc.supervise.pids import ProcessRef
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.status import LauncherSnapshot, RunState, StartResult

TOKEN_HEADER = "X-Asyncrpc-Token"
UNAUTHORIZED = 401
HOW_TO_START = (
    "Start everything with `asyncrpc up` (or `asyncrpc up --detach` to get the prompt back)."
)


def new_token() -> str:
    return secrets.token_urlsafe(16)


def token_matches(given: str, token: str) -> bool:
    """Whether ``given`` is ``token``, in constant time, whatever characters it holds.

    Compared as bytes: :func:`secrets.compare_digest` refuses text that is not ASCII.
    """
    return secrets.compare_digest(given.encode(), token.encode())


@dataclass
class ControlClient:
    """Talks to a running supervisor's control server."""

    url: str
    token: str
    supervisor: ProcessRef
    run_dir: RunDir
    #: The dashboard's sign-in secret (None: no dashboard), from the same state file.
    dashboard_token: str | None = None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            answer = local_http.request(
                f"{self.url}{path}",
                method,
                body=body,
                headers={TOKEN_HEADER: self.token},
                timeout=120.0,
            )
        except local_http.Unreachable as error:
            raise self.unreachable(str(error)) from None
        if answer.status == UNAUTHORIZED:
            # Not our supervisor's answer: another process holds the port it had.
            raise self.unreachable(f"HTTP {answer.status}")
        try:
            data = answer.json()
        except ValueError:
            data = {"error": answer.text}
        if answer.status >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            code = data.get("exit_code") if isinstance(data, dict) else None
            raise CommandError(message or f"supervisor error {answer.status}", code)
        return data

    def unreachable(self, why: str) -> CommandError:
        """Why the control server did not answer: NothingRunning when the supervisor is gone."""
        if not self.supervisor.alive():
            return supervisor_gone(self.run_dir, self.supervisor)
        return CommandError(
            f"the supervisor (pid {self.supervisor.pid}) did not answer at {self.url}: {why}"
        )

    def status(self) -> LauncherSnapshot:
        return LauncherSnapshot.from_json(self._request("GET", "/status"))

    def kill(self, node: str, sig: str = "KILL") -> list[str]:
        """Signal ``node`` (`b`, `b.2`); the names of the replicas signalled."""
        killed: list[str] = self._request("POST", "/kill", {"node": node, "signal": sig})["killed"]
        return killed

    def start(self, node: str, delay: float | None = None, add: bool = False) -> StartResult:
        body = {"node": node, "delay": delay, "add": add}
        return StartResult.from_json(self._request("POST", "/start", body))

    def restart(self, node: str) -> list[str]:
        restarted: list[str] = self._request("POST", "/restart", {"node": node})["restarted"]
        return restarted

    def down(self, timeout: float = 30.0) -> list[str]:
        """Stop everything and wait until the supervisor process itself has exited."""
        stopped: list[str] = self._request("POST", "/down")["stopped"]
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


def supervisor_gone(run_dir: RunDir, ref: ProcessRef) -> NothingRunning:
    """The message for a supervisor that has exited, naming what it left running."""
    state = run_dir.read_state()
    left = orphans(state) if state else []
    pid = f" (pid {ref.pid})"
    if left:
        names = ", ".join(name for name, _ in left)
        return NothingRunning(
            f"the supervisor{pid} in {run_dir.path} is no longer running, but processes it "
            f"started still are: {names}. Stop them with `asyncrpc down`, then {HOW_TO_START}"
        )
    return NothingRunning(
        f"nothing is running: the supervisor{pid} in {run_dir.path} has exited. {HOW_TO_START}"
    )


def connect(run_dir: RunDir) -> ControlClient:
    """A client for the supervisor of ``run_dir``, or NothingRunning saying how to start one.

    Whether the supervisor still runs is asked only when it does not answer
    (:meth:`ControlClient.unreachable`): an answer carrying its token already
    proves it, and a command that answers at once need not load psutil.
    """
    state = run_dir.read_state()
    if state is None:
        raise NothingRunning(
            f"nothing is running (no supervisor in {run_dir.path}). {HOW_TO_START}"
        )
    return ControlClient(
        state.control_url, state.token, state.supervisor, run_dir, state.dashboard_token
    )


def is_running(run_dir: RunDir) -> bool:
    """True while a supervisor answers for ``run_dir`` (by its state file and process)."""
    try:
        return connect(run_dir).supervisor.alive()
    except CommandError:
        return False
