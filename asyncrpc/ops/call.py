"""`asyncrpc invoke` (`call`): invoke a flow through the gateway and wait for its result.

:func:`call_flow` is the whole command: it checks the flow and timeout, finds
the gateway (`--gateway-url`, ASYNCRPC_GATEWAY_URL, else the supervisor's),
mints an invocation id when none is given, and calls.

:class:`FlowCaller` speaks the gateway's HTTP API: ``POST <route>?id=...&wait=...``
answers 200 ``{"message": result}``, or 202 while the flow runs, after which
``GET /invocations/{id}`` is polled until the invocation settles. Nobody waits
for the detached chain, so its result is the value its last step stored: that
promise is found on the Resonate server by the chain's origin tag.

Nothing is reported as started that the server did not confirm. A 503 whose
answer says ``"started": false`` means the server never confirmed creating
the invocation: the start is sent again (same id: it creates the invocation
or finds it) until ``start_timeout`` seconds have passed, and then the call
fails with :class:`CallNotStarted` (exit code 3), which says so. A call whose
gateway went away mid-request does not know whether its start got through:
it asks ``GET /invocations/{id}``, and an id the server does not know is
started again rather than waited on. Once started, connection failures are
retried until the timeout, so a call survives a gateway restart; with the
same id it re-attaches to the same invocation.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from asyncrpc.lesson import topology
from asyncrpc.protocol.errors import InvocationError
from asyncrpc.protocol.states import PromiseState
from asyncrpc.protocol.tags import ORIGIN_TAG
from asyncrpc.runtime import config, local_http
from asyncrpc.runtime.errors import EXIT_TIMEOUT, CommandError, UsageError
from asyncrpc.supervise.control_client import connect
from asyncrpc.supervise.rundir import RunDir
from asyncrpc.supervise.targets import check_flow

if TYPE_CHECKING:
    from asyncrpc.protocol.records import PromiseRecord
    from asyncrpc.readers.server_reader import ServerReader

#: Longest a single HTTP request asks the gateway to hold the answer.
LONG_POLL = 10.0
POLL_INTERVAL = 0.1
#: Seconds between two starts of an invocation the server did not confirm.
RESTART_PAUSE = 0.5
#: The gateway answers 503 while it cannot reach the server (a restart).
UNAVAILABLE = 503
NOT_FOUND = 404
#: `invoke`'s exit code when the invocation was NOT started (safe to send the same id again).
EXIT_NOT_STARTED = 3


class CallTimeout(CommandError):
    """No result before the timeout; the invocation itself goes on (exit 124)."""

    exit_code = EXIT_TIMEOUT


class CallNotStarted(CommandError):
    """The server never confirmed creating the invocation: it was NOT started."""

    exit_code = EXIT_NOT_STARTED


class _Unknown:
    """The gateway's server does not know the invocation (a start that may not have got through)."""


UNKNOWN = _Unknown()


@dataclass
class CallResult:
    flow: str
    id: str
    result: Any
    seconds: float
    #: For the detached chain: what the entry function returned to the gateway.
    entry_result: Any = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def new_invocation_id(flow: topology.Flow) -> str:
    """A fresh invocation id, e.g. `await-chain-3f9a1c2e`."""
    return f"{flow.default_id}-{secrets.token_hex(4)}"


def not_started(response: local_http.HttpReply) -> bool:
    """Whether a gateway's answer says the invocation was NOT started (``"started": false``)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("started") is False


def _error_of(response: local_http.HttpReply) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status}"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return str(data)


@dataclass
class FlowCaller:
    """Calls flows on one gateway; ``server_url`` is needed for the detached chain."""

    gateway_url: str
    server_url: str | None = None
    token: str | None = None
    clock: Callable[[], float] = time.monotonic
    sleeper: Callable[[float], None] = time.sleep
    #: Seconds to keep starting an invocation the server does not confirm (then exit 3).
    start_timeout: float = config.DEFAULT_START_TIMEOUT
    #: Whether the gateway has confirmed that the invocation exists (set while calling).
    confirmed: bool = field(default=False, init=False)

    def call(self, flow: topology.Flow, invocation_id: str, timeout: float) -> CallResult:
        start = self.clock()
        deadline = start + timeout
        entry = self._invoke(flow, invocation_id, deadline, timeout)
        if flow.waits_for_result:
            result = entry
        else:
            result = self._last_step_result(flow, invocation_id, deadline, timeout)
        return CallResult(
            flow=flow.name,
            id=invocation_id,
            result=result,
            seconds=round(self.clock() - start, 3),
            entry_result=None if flow.waits_for_result else entry,
        )

    def _timeout(self, flow: topology.Flow, invocation_id: str, timeout: float) -> CallTimeout:
        return CallTimeout(
            f"no result after {timeout:g}s; invocation {invocation_id} goes on. Wait for it "
            f"again with `asyncrpc invoke {flow.name} --id {invocation_id}`."
        )

    def _not_started(self, flow: topology.Flow, invocation_id: str, why: str) -> CallNotStarted:
        """``why`` (sentences saying it was NOT started), and how to send it again."""
        return CallNotStarted(
            f"{why} To send it again: `asyncrpc invoke {flow.name} --id {invocation_id}`."
        )

    def _invoke(
        self,
        flow: topology.Flow,
        invocation_id: str,
        deadline: float,
        timeout: float,
    ) -> Any:
        """Start (or re-attach to) the invocation, then wait for its result."""
        start_deadline = min(deadline, self.clock() + self.start_timeout)
        first = True
        while True:
            response = self._post(flow, invocation_id, deadline, first=first)
            first = False
            if response is not None and response.status == 200:
                self.confirmed = True
                return self._message(response)
            if response is not None and response.status == 202:
                self.confirmed = True
                return self._poll(flow, invocation_id, deadline, timeout, started=True)
            if response is not None and response.status == UNAVAILABLE and not_started(response):
                if self.clock() >= start_deadline:
                    raise self._not_started(flow, invocation_id, _error_of(response))
                self.sleeper(RESTART_PAUSE)
                continue
            if response is not None and response.status != UNAVAILABLE:
                raise CommandError(f"the gateway refused {flow.name}: {_error_of(response)}")
            # The gateway went away mid-request, or could not wait for the result: whether
            # the invocation exists is known only by asking.
            result = self._poll(flow, invocation_id, deadline, timeout, started=False)
            if result is not UNKNOWN:
                return result
            if self.clock() >= start_deadline:
                raise self._not_started(
                    flow,
                    invocation_id,
                    f"invocation {invocation_id} was NOT started: the server does not know "
                    f"it after {self.start_timeout:g}s of trying to start it.",
                )
            self.sleeper(RESTART_PAUSE)

    def _post(
        self, flow: topology.Flow, invocation_id: str, deadline: float, *, first: bool
    ) -> local_http.HttpReply | None:
        """One start request; None when the gateway went away before answering."""
        wait = max(0.0, min(LONG_POLL, deadline - self.clock()))
        url = f"{self.gateway_url}{flow.route}"
        params = {"id": invocation_id, "wait": f"{wait:g}"}
        try:
            return local_http.request(
                url,
                "POST",
                params=params,
                # The gateway itself may try for its own start timeout before it answers.
                timeout=wait + max(self.start_timeout, config.DEFAULT_START_TIMEOUT) + 10,
            )
        except local_http.Unreachable as error:
            if not error.connected and first:
                raise CallNotStarted(
                    f"no gateway answers at {self.gateway_url}, so invocation {invocation_id} "
                    "was NOT started. See what runs with `asyncrpc status`; start the gateway "
                    "with `asyncrpc start gateway`."
                ) from None
            return None

    @staticmethod
    def _body(response: local_http.HttpReply, *, key: str | None = None) -> dict[str, Any]:
        """The answer's JSON object (which must hold ``key``, when given)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or (key is not None and key not in body):
            raise CommandError(f"unexpected answer from the gateway: {response.text!r}")
        return body

    def _message(self, response: local_http.HttpReply) -> Any:
        return self._body(response, key="message")["message"]

    def _poll(
        self,
        flow: topology.Flow,
        invocation_id: str,
        deadline: float,
        timeout: float,
        *,
        started: bool,
    ) -> Any:
        """The invocation's result once it settles.

        ``started`` says the gateway confirmed the start. Without that, an
        invocation the server does not know (404) is :data:`UNKNOWN`: its
        start did not get through, and the caller starts it again.
        """
        url = f"{self.gateway_url}/invocations/{invocation_id}"
        while self.clock() < deadline:
            try:
                response = local_http.request(url, timeout=10.0)
            except local_http.Unreachable:
                response = None  # gateway restarting: keep trying until the deadline
            if response is not None and response.status == 200:
                started = self.confirmed = True
                body = self._body(response)
                state = body.get("state")
                if state == "resolved":
                    return body.get("result")
                if state != "pending":
                    raise CommandError(
                        f"invocation {invocation_id} ended {state}: {body.get('result')!r}"
                    )
            elif response is not None and response.status == NOT_FOUND and not started:
                return UNKNOWN
            elif response is not None and response.status not in (NOT_FOUND, UNAVAILABLE):
                raise CommandError(
                    f"the gateway could not report {invocation_id}: {_error_of(response)}"
                )
            self.sleeper(POLL_INTERVAL)
        if not started:
            raise CommandError(
                f"no word from the gateway about invocation {invocation_id} for {timeout:g}s: "
                "whether it started is not known. Send the same id again "
                f"(`asyncrpc invoke {flow.name} --id {invocation_id}`): that starts it, or "
                "re-attaches to it."
            )
        raise self._timeout(flow, invocation_id, timeout)

    # -- the detached chain's result, read from the server ---------------------

    def _last_step_result(
        self,
        flow: topology.Flow,
        root_id: str,
        deadline: float,
        timeout: float,
    ) -> Any:
        """The value the flow's last step stored, once that promise is resolved."""
        if not self.server_url:
            raise CommandError(f"{flow.name}'s result is read from the server: give its URL.")
        from asyncrpc.readers.server_reader import ServerReader  # only this flow reads it

        with ServerReader(self.server_url, self.token) as server:
            return self._wait_for_last_step(server, flow, root_id, deadline, timeout)

    def _wait_for_last_step(
        self,
        server: ServerReader,
        flow: topology.Flow,
        root_id: str,
        deadline: float,
        timeout: float,
    ) -> Any:
        while self.clock() < deadline:
            try:
                promises = server.search(tags={ORIGIN_TAG: root_id})
            except InvocationError:
                promises = []  # the server is restarting: ask again
            promise = last_step(flow, promises)
            if promise is not None and promise.state is PromiseState.RESOLVED:
                return promise.value
            if promise is not None and promise.settled:
                raise CommandError(f"{promise.function} in {root_id} ended {promise.state}")
            self.sleeper(POLL_INTERVAL)
        raise self._timeout(flow, root_id, timeout)


def last_step(flow: topology.Flow, promises: Iterable[PromiseRecord]) -> PromiseRecord | None:
    """The promise of ``flow``'s last step among one invocation's promises; None before it starts.

    Nobody waits for the detached chain, so its result is the value this step stores:
    `asyncrpc invoke` and the dashboard both read it here.
    """
    function = topology.NODES[flow.nodes[-1]].function
    return next((promise for promise in promises if promise.function == function), None)


# -- the `asyncrpc call` command as one function ------------------------------


@dataclass(frozen=True)
class CallStart:
    """What a call is about to do, known before it waits (the CLI prints it)."""

    flow: topology.Flow
    invocation_id: str
    #: True when the id was minted here (the caller needs it to re-attach).
    fresh: bool
    gateway_url: str
    server_url: str | None
    #: The flow's nodes the supervisor does not run: the call waits until one serves each step.
    missing: tuple[str, ...] = ()


def prepare_call(
    flow_name: str,
    *,
    invocation_id: str | None,
    timeout: float,
    gateway_url: str | None,
    env: Mapping[str, str],
    rundir: RunDir,
) -> CallStart:
    """Check the call's options and find where to send it; UsageError on a wrong value."""
    flow = check_flow(flow_name)
    if not timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds.")
    gateway = gateway_url or env.get(config.ENV_GATEWAY_URL)
    server = config.server_url(env) if gateway else None
    missing: tuple[str, ...] = ()
    if not gateway:
        snapshot = connect(rundir).status()
        gateway, server = snapshot.gateway_url, snapshot.server_url
        if not gateway:
            raise CommandError(
                "the supervisor runs no gateway. Start one with `asyncrpc start gateway`."
            )
        running = snapshot.running_nodes()
        missing = tuple(node for node in flow.nodes if node not in running)
    return CallStart(
        flow=flow,
        invocation_id=invocation_id or new_invocation_id(flow),
        fresh=invocation_id is None,
        gateway_url=gateway.rstrip("/"),
        server_url=server,
        missing=missing,
    )


def call_flow(
    flow_name: str,
    *,
    invocation_id: str | None = None,
    timeout: float,
    gateway_url: str | None = None,
    env: Mapping[str, str],
    rundir: RunDir,
    on_start: Callable[[CallStart], None] = lambda start: None,
    start_timeout: float = config.DEFAULT_START_TIMEOUT,
) -> CallResult:
    """`asyncrpc call`: check, resolve, announce (``on_start``), call and wait for the result.

    Ctrl-C becomes a CommandError (exit 130) that says how to re-attach, or,
    before the server confirmed the start, that it may not have started.
    """
    start = prepare_call(
        flow_name,
        invocation_id=invocation_id,
        timeout=timeout,
        gateway_url=gateway_url,
        env=env,
        rundir=rundir,
    )
    on_start(start)
    caller = FlowCaller(
        start.gateway_url,
        start.server_url,
        env.get(config.ENV_TOKEN),
        start_timeout=start_timeout,
    )
    again = f"`asyncrpc invoke {start.flow.name} --id {start.invocation_id}`"
    try:
        return caller.call(start.flow, start.invocation_id, timeout)
    except KeyboardInterrupt:
        if not caller.confirmed:
            raise CommandError(
                f"interrupted before the server confirmed starting invocation "
                f"{start.invocation_id}: it may not have started. Send the same id again "
                f"with {again}: that starts it, or re-attaches to it.",
                130,
            ) from None
        raise CommandError(
            f"interrupted; invocation {start.invocation_id} goes on. Wait for it again "
            f"with {again}.",
            130,
        ) from None
