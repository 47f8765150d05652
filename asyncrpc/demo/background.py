"""The demo's caller: one `asyncrpc call` that waits on a thread while the demo watches.

Like a person's `curl` in another terminal, the call is in flight during the
whole crash. :class:`~asyncrpc.ops.call.FlowCaller` already survives a
gateway restart (it polls the invocation until its deadline); when the call
fails anyway (e.g. while the server was down), the demo starts another one
with the same invocation id, which re-attaches to the same durable promise.
The thread is a daemon so a Ctrl-C never waits for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from asyncrpc.lesson import topology
from asyncrpc.ops.call import CallResult, FlowCaller


class BackgroundCall:
    """``caller.call(flow, invocation_id, timeout)`` on a daemon thread."""

    def __init__(
        self,
        caller: FlowCaller,
        flow: topology.Flow,
        invocation_id: str,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.result: CallResult | None = None
        self.error: Exception | None = None
        self.finished_at: float | None = None
        self._clock = clock
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(caller, flow, invocation_id, timeout),
            name=f"call-{invocation_id}",
            daemon=True,
        )

    def start(self) -> BackgroundCall:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def failed(self) -> bool:
        return self.done and self.error is not None

    def _run(
        self, caller: FlowCaller, flow: topology.Flow, invocation_id: str, timeout: float
    ) -> None:
        try:
            self.result = caller.call(flow, invocation_id, timeout)
        except Exception as error:  # reported by the demo, never raised on this thread
            self.error = error
        finally:
            self.finished_at = self._clock()
            self._done.set()
