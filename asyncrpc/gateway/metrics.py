"""What the gateway exposes at ``GET /metrics``, in Prometheus' text format.

- ``asyncrpc_gateway_invocations_total{flow, outcome}``: every call of a flow route,
  by how it ended (:class:`Outcome`);
- ``asyncrpc_gateway_invocation_duration_seconds{flow}``: how long the gateway took
  to answer it (for a flow that waits, the flow's own run time, up to ``wait``);
- ``asyncrpc_gateway_server_connected``: 1 while the gateway's poll stream to the
  server is connected, read when scraped.

A flow route's handler is wrapped by :meth:`GatewayMetrics.counted`, which costs a
clock reading and a few additions per call
(:class:`~asyncrpc.runtime.metrics.AnswerTally`). Each gateway app has a registry
of its own, so apps in one process (the tests') never collide.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum
from typing import Any, ParamSpec

from prometheus_client.core import GaugeMetricFamily, Metric

from asyncrpc.gateway.query import InvalidQuery
from asyncrpc.lesson import topology
from asyncrpc.protocol.errors import (
    InvalidInvocationId,
    InvocationConflict,
    InvocationFailed,
    ServerRefused,
    ServerUnavailable,
)
from asyncrpc.runtime.metrics import CONTENT_TYPE, AnswerTally, exposition, new_registry

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "Outcome", "authorized"]

#: Seconds: a flow answers in milliseconds, a crash demo's flow in seconds, `wait` caps it.
INVOCATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

P = ParamSpec("P")


class Outcome(StrEnum):
    """How a call of a flow route ended, as the ``outcome`` label says it."""

    #: 200 with the flow's result.
    RESOLVED = "resolved"
    #: 200 for a flow nobody waits for: it started.
    STARTED = "started"
    #: 202: still running when ``wait`` ran out; the result comes later.
    PENDING = "pending"
    #: The invocation settled without a value (the function raised, or it timed out).
    REJECTED = "rejected"
    #: A bad ``id`` or ``wait`` (400).
    INVALID = "invalid"
    #: The id is another function's invocation (409).
    CONFLICT = "conflict"
    #: The server did not answer, or refused (502, 503).
    UNAVAILABLE = "unavailable"
    #: Anything unforeseen (500).
    ERROR = "error"


def outcome_of_answer(flow: topology.Flow, status: int) -> Outcome:
    if status == 200:
        return Outcome.RESOLVED if flow.waits_for_result else Outcome.STARTED
    return {
        202: Outcome.PENDING,
        400: Outcome.INVALID,
        409: Outcome.CONFLICT,
        502: Outcome.UNAVAILABLE,
        503: Outcome.UNAVAILABLE,
    }.get(status, Outcome.ERROR)


def outcome_of_error(error: Exception) -> Outcome:
    if isinstance(error, InvocationFailed):
        return Outcome.REJECTED
    if isinstance(error, InvalidInvocationId | InvalidQuery):
        return Outcome.INVALID
    if isinstance(error, InvocationConflict):
        return Outcome.CONFLICT
    if isinstance(error, ServerUnavailable | ServerRefused):
        return Outcome.UNAVAILABLE
    return Outcome.ERROR


class ConnectionCollector:
    """``asyncrpc_gateway_server_connected``, asked of the gateway's client when scraped."""

    def __init__(self, connected: Callable[[], bool]) -> None:
        self.connected = connected

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "asyncrpc_gateway_server_connected",
            "1 while the gateway's poll stream to the Resonate server is connected.",
            value=1 if self.connected() else 0,
        )


class GatewayMetrics:
    """The gateway's registry: invocations by flow and outcome, their latency, the link."""

    def __init__(
        self,
        connected: Callable[[], bool],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock
        self.invocations = AnswerTally(
            counter="asyncrpc_gateway_invocations",
            counter_help="Calls of the flow routes, by flow and outcome.",
            labels=("flow", "outcome"),
            histogram="asyncrpc_gateway_invocation_duration_seconds",
            histogram_help="Seconds the gateway took to answer a flow route, by flow.",
            buckets=INVOCATION_BUCKETS,
        )
        self.registry = new_registry()
        self.registry.register(self.invocations)
        self.registry.register(ConnectionCollector(connected))

    def counted(
        self, flow: topology.Flow, handler: Callable[P, Awaitable[Any]]
    ) -> Callable[P, Awaitable[Any]]:
        """``handler`` (a flow route's), counting each call and timing it."""

        @functools.wraps(handler)
        async def counting(*args: P.args, **kwargs: P.kwargs) -> Any:
            started = self.clock()
            try:
                answer = await handler(*args, **kwargs)
            except Exception as error:
                self.invocations.record(flow.name, outcome_of_error(error), self.clock() - started)
                raise
            outcome = outcome_of_answer(flow, getattr(answer, "status_code", 200))
            self.invocations.record(flow.name, outcome, self.clock() - started)
            return answer

        return counting

    def exposition(self) -> bytes:
        """Everything, in the text format Prometheus scrapes."""
        return exposition(self.registry)


def authorized(header: str | None, token: str | None) -> bool:
    """Whether a request with this ``Authorization`` header may read the metrics.

    With a token set (RESONATE_TOKEN) they want it, as the server's do: they say what
    runs and how much.
    """
    if not token:
        return True
    return header is not None and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
