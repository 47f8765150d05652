"""What the server exposes at ``GET /metrics``, in Prometheus' text format.

Two kinds of numbers, paid for in two places:

- per request: ``asyncrpc_server_requests_total`` (by kind and status) and
  ``asyncrpc_server_request_duration_seconds`` (by kind), kept by an
  :class:`~asyncrpc.runtime.metrics.AnswerTally`; on the hot path an answer is only
  noted (appended to a list), and the notes are counted at the next scrape or once
  a thousand of them wait;
- of the state, at scrape time only: promises and tasks by state and the open poll
  streams by group are counted from the engine's state by :class:`EngineCollector`
  when Prometheus asks, so no request ever updates a gauge.

Each :class:`ServerMetrics` has a registry of its own (not prometheus_client's
global one), so several servers in one process never share or collide on a metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

from asyncrpc.protocol.states import PromiseState
from asyncrpc.runtime.metrics import CONTENT_TYPE, AnswerTally, exposition, new_registry
from asyncrpc.server.records import TaskState

if TYPE_CHECKING:
    from asyncrpc.server.engine import Engine

__all__ = ["CONTENT_TYPE", "NO_KIND", "OTHER_KIND", "EngineCollector", "ServerMetrics"]

#: The ``kind`` label of a request whose kind the server does not know (a client's
#: typo must not grow a series of its own), and of a body that was not a request.
OTHER_KIND = "other"
#: Answers noted before they are counted, at most (see :meth:`ServerMetrics.request`).
UNCOUNTED_LIMIT = 1024
NO_KIND = "invalid"
#: Request latency buckets (seconds): a read answers in well under a millisecond, a
#: write waits for its commit (a millisecond or a few), a slow disk shows at the top.
REQUEST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class EngineCollector:
    """The engine's state as gauges, counted when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        now = engine.clock()
        promises = Counter(promise.state_at(now) for promise in engine.state.promises.values())
        stored = engine.state.history.count_by_state()
        promises.update({PromiseState(state): count for state, count in stored.items()})
        yield _gauge(
            "asyncrpc_server_promises",
            "Promises the server holds, by state; one past its timeout counts as settled by "
            "it, as every answer shows it.",
            "state",
            {str(state): promises[state] for state in PromiseState},
        )
        tasks = Counter(task.state for task in engine.state.tasks.values())
        tasks[TaskState.FULFILLED] += engine.state.history.fulfilled_count()
        yield _gauge(
            "asyncrpc_server_tasks",
            "Tasks the server holds, by state.",
            "state",
            {str(state): tasks[state] for state in TaskState},
        )
        streams = Counter(stream.group for stream in engine.router.streams())
        yield _gauge(
            "asyncrpc_server_poll_streams",
            "Open poll streams (connected replicas), by group.",
            "group",
            dict(streams),
        )


def _gauge(name: str, documentation: str, label: str, values: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(values.items()):
        family.add_metric([value], count)
    return family


class ServerMetrics:
    """The server's registry: request counts and latencies, and the engine's gauges."""

    def __init__(self, engine: Engine, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        self.requests = AnswerTally(
            counter="asyncrpc_server_requests",
            counter_help="Protocol requests answered (POST /), by kind and HTTP status.",
            labels=("kind", "status"),
            histogram="asyncrpc_server_request_duration_seconds",
            histogram_help="Seconds from a protocol request's arrival to its answer, its "
            "commit included, by kind.",
            buckets=REQUEST_BUCKETS,
        )
        #: Answers noted but not yet counted: (kind, status, seconds).
        self._uncounted: list[tuple[str | None, int, float]] = []
        self.registry = new_registry()
        self.registry.register(self.requests)
        self.registry.register(EngineCollector(engine))

    def request(self, kind: str | None, status: int, seconds: float) -> None:
        """Count one answered request of ``kind`` (None: the body was not a request).

        The answer is noted as it is and counted when the counts are read (a scrape) or
        :data:`UNCOUNTED_LIMIT` wait: noting one costs a fraction of counting it, and a
        request's own turn of the event loop is on its flow's path.
        """
        uncounted = self._uncounted
        uncounted.append((kind, status, seconds))
        if len(uncounted) >= UNCOUNTED_LIMIT:
            self.count_answers()

    def count_answers(self) -> None:
        """Count the answers noted since the counts were last read."""
        uncounted, self._uncounted = self._uncounted, []
        kinds, record = self.kinds, self.requests.record
        for kind, status, seconds in uncounted:
            if kind not in kinds:
                kind = NO_KIND if kind is None else OTHER_KIND
            record(kind, status, seconds)

    def exposition(self) -> bytes:
        """Everything, in the text format Prometheus scrapes."""
        self.count_answers()
        return exposition(self.registry)
