"""Coord's metric types: plain numbers updated on the event loop, turned into Prometheus text when
scraped.

A call site binds its labelled child once (at start-up, or the first time a label value is seen) and
from then on only adds to a number: no lock, no label lookup, no allocation per call. That is safe
because every update and every scrape runs on the server's one event loop (the endpoint is an asyncio
server, http.py). prometheus-client is used for the text format only.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

# How the supervisor of several workers merges one gauge's per-worker values (merge.py); counters
# and histograms are always summed.
Merge = Literal["sum", "max", "min"]

# go-grpc-prometheus's default buckets, with finer ones below 5 ms: most Coord calls end there.
LATENCY_BUCKETS: tuple[float, ...] = (
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
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Value:
    """One labelled series of a counter or gauge: ``value`` is read and written directly."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class Observed:
    """One labelled series of a histogram: a count per bucket (not cumulative until exposed) and a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # bisect_left: the first bound >= amount, Prometheus's "le".
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class Family:
    """A metric and its labelled series. ``child(*values)`` makes or finds one; keep what it returns."""

    def __init__(
        self,
        name: str,
        help: str,
        kind: Literal["counter", "gauge", "histogram"],
        labels: Sequence[str] = (),
        *,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
        merge: Merge = "sum",
    ) -> None:
        self.name = name
        self.help = help
        self.kind = kind
        self.labels = tuple(labels)
        self.buckets = buckets
        self.merge = merge
        self._children: dict[tuple[str, ...], Value | Observed] = {}
        # Read at scrape time instead of stored: labels -> value (a queue's length, a set's size).
        self.read: Callable[[], Iterable[tuple[tuple[str, ...], float]]] | None = None

    def value(self, *labels: str) -> Value:
        child = self._children.get(labels)
        if child is None:
            assert self.kind != "histogram" and len(labels) == len(self.labels), (self.name, labels)
            child = self._children[labels] = Value()
        assert isinstance(child, Value)
        return child

    def observed(self, *labels: str) -> Observed:
        child = self._children.get(labels)
        if child is None:
            assert self.kind == "histogram" and len(labels) == len(self.labels), (self.name, labels)
            child = self._children[labels] = Observed(self.buckets)
        assert isinstance(child, Observed)
        return child

    def forget(self, *labels: str) -> None:
        """Drop one series (a Redis node that left the cluster)."""
        self._children.pop(labels, None)

    def series(self) -> Iterator[tuple[tuple[str, ...], Value | Observed]]:
        yield from self._children.items()

    def export(self) -> Metric:
        labels = list(self.labels)
        if self.kind == "counter":
            counter = CounterMetricFamily(self.name, self.help, labels=labels)
            for values, child in self._children.items():
                assert isinstance(child, Value)
                counter.add_metric(list(values), child.value)
            return counter
        if self.kind == "gauge":
            gauge = GaugeMetricFamily(self.name, self.help, labels=labels)
            for values, child in self._children.items():
                assert isinstance(child, Value)
                gauge.add_metric(list(values), child.value)
            if self.read is not None:
                for values, value in self.read():
                    gauge.add_metric(list(values), value)
            return gauge
        histogram = HistogramMetricFamily(self.name, self.help, labels=labels)
        for values, child in self._children.items():
            assert isinstance(child, Observed)
            cumulative, total = [], 0
            for bound, count in zip((*child.bounds, math.inf), child.counts, strict=True):
                total += count
                cumulative.append((_le(bound), float(total)))
            histogram.add_metric(list(values), cumulative, child.sum)
        return histogram


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


class Registry(Collector):
    """The families of one server, in the order they were made; a prometheus-client collector."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def add(self, family: Family) -> Family:
        assert family.name not in self._families, family.name
        self._families[family.name] = family
        return family

    def families(self) -> list[Family]:
        return list(self._families.values())

    def collect(self) -> Iterator[Metric]:
        for family in self._families.values():
            yield family.export()

    def exposition(self) -> bytes:
        """The Prometheus text format (version 0.0.4) of every family."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry)
