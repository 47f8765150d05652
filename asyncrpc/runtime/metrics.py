"""Counting answers on a hot path for Prometheus, at the cost of a few additions.

The server and the gateway each answer every request on one event loop thread, and
each wants, per answer, a counter (by two labels: what was asked, how it ended) and a
latency histogram (by the first label). prometheus_client's own ``Counter`` and
``Histogram`` take a lock on every increment, which is what a threaded program
needs and costs several microseconds per request here; :class:`AnswerTally` keeps
the same numbers as plain integers (one thread writes them, the same thread
reads them when scraped) and hands them to prometheus_client as metric families
at scrape time, so the exposition, the registry and the text format remain the
library's. Record and scrape on the same thread; that is the one rule.

:func:`new_registry` is a registry of one app's own (never prometheus_client's
global one, so servers and gateways in one process do not collide), with the
process' CPU, memory and file numbers in it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

#: The ``Content-Type`` of the text exposition.
CONTENT_TYPE = CONTENT_TYPE_LATEST


def new_registry() -> CollectorRegistry:
    """A registry for one app: its own metrics, plus the process' (CPU, memory, files)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """Everything in ``registry``, in the text format Prometheus scrapes."""
    return generate_latest(registry)


class _Latency:
    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        #: Observations per bucket (not cumulative); the last one is +Inf.
        self.buckets = [0] * size
        self.total = 0.0


class AnswerTally(Collector):
    """A counter by two labels and a latency histogram by the first, kept as plain numbers.

    ``record(first, second, seconds)`` counts one answer; a scrape reads them as a
    counter ``{counter}_total{first=..., second=...}`` and a histogram
    ``{histogram}_bucket{first=..., le=...}``. Label values are whatever the caller
    passes: it keeps them few (a fixed set), as Prometheus wants.
    """

    def __init__(
        self,
        *,
        counter: str,
        counter_help: str,
        labels: tuple[str, str],
        histogram: str,
        histogram_help: str,
        buckets: Sequence[float],
    ) -> None:
        self.counter, self.counter_help = counter, counter_help
        self.histogram, self.histogram_help = histogram, histogram_help
        self.labels = labels
        self.bounds = tuple(sorted(buckets))
        self._counts: dict[tuple[str, object], int] = {}
        self._latency: dict[str, _Latency] = {}

    def record(self, first: str, second: object, seconds: float) -> None:
        """One answer: ``first`` and ``second`` are its labels, ``seconds`` its latency."""
        key = (first, second)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        latency = self._latency.get(first)
        if latency is None:
            latency = self._latency[first] = _Latency(len(self.bounds) + 1)
        latency.total += seconds
        latency.buckets[bisect_left(self.bounds, seconds)] += 1

    def count(self, first: str, second: object) -> int:
        """How many answers had these labels."""
        return self._counts.get((first, second), 0)

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(self.counter, self.counter_help, labels=list(self.labels))
        for (first, second), count in sorted(self._counts.items(), key=str):
            counter.add_metric([first, str(second)], count)
        yield counter
        histogram = HistogramMetricFamily(
            self.histogram, self.histogram_help, labels=[self.labels[0]]
        )
        bounds = [*map(floatToGoString, self.bounds), "+Inf"]
        for first, latency in sorted(self._latency.items()):
            cumulative, running = [], 0
            for bound, observed in zip(bounds, latency.buckets, strict=True):
                running += observed
                cumulative.append((bound, running))
            histogram.add_metric([first], cumulative, latency.total)
        yield histogram
