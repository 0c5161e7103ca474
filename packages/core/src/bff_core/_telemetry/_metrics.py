"""Prometheus metrics of a gateway: what its requests, parts, cache and upstreams did.

Every label value comes from a closed set known at start-up (route templates, aggregate,
source and service names, outcomes, HTTP statuses, the methods of ``_labels.METHODS``): never
an id, a URL, a user or a method a client made up, so the number of series is bounded by the
declarations, whatever the traffic. A request no route matched is counted under the route
``unmatched``.

The hot path only adds to plain dictionaries: prometheus-client's metric objects take a lock
and a few calls per increment, about 15 µs for the dozen updates of one aggregate, 5 % of its
whole cost (measured in ``bench``'s telemetry scenario). prometheus-client turns them into its
text format at scrape time (a custom collector).

With several worker processes (``--workers N``), ``serve`` gives them a directory
(``BFF_METRICS_DIR``): each worker writes its totals there every second, and ``/metrics``,
whichever worker answers it, adds up every worker's (its own live, the others' at most a
second old). Counters of a worker that died are kept (totals never go down); its gauges are
not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .._outcome import PartOutcome
from ._labels import KNOWN_METHODS

__all__ = [
    "CACHE_RESULTS",
    "EDGE_REFUSALS",
    "METRICS_CONTENT_TYPE",
    "METRICS_DIR_VARIABLE",
    "WRITE_OUTCOMES",
    "Metrics",
]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_DIR_VARIABLE = "BFF_METRICS_DIR"

#: What a lookup of a cached part found: fresh, stale (served while refreshed, or because the
#: upstream failed), nothing usable (the upstream was asked), or not looked up at all because
#: the policy does not share that answer (per-user data).
CACHE_RESULTS = ("hit", "stale", "miss", "bypassed")

# Seconds: an aggregation's deadline is 1 s by default, at most 30 s.
BUCKETS = (
    0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip

#: Breaker states as numbers, so that the worst of several workers is their maximum.
BREAKER_STATE_VALUES = {"closed": 0.0, "half-open": 1.0, "open": 2.0}

_FLUSH_EVERY_S = 1.0

logger = logging.getLogger("bff_core")

Kind = Literal["counter", "histogram", "gauge-max", "gauge-min"]


class _Family(msgspec.Struct, frozen=True):
    kind: Kind
    help: str
    labels: tuple[str, ...]
    #: a histogram's upper bounds (seconds, unless it counts something else)
    buckets: tuple[float, ...] = BUCKETS


#: Ids per batch request: 1 up to the upstreams' usual limit of 50.
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 50.0, 100.0)


# The names of the counters without their _total, which the text format adds.
FAMILIES: dict[str, _Family] = {
    "bff_http_request_duration_seconds": _Family(
        "histogram",
        "Requests answered, by route template, method and status, and how long each took",
        ("route", "method", "status"),
    ),
    "bff_part_outcomes": _Family(
        "counter",
        "Parts of aggregations by outcome: ok, or the reason they failed",
        ("aggregate", "source", "outcome"),
    ),
    "bff_part_duration_seconds": _Family(
        "histogram", "How long each part took, from its request's start to its outcome", ("source",)
    ),
    "bff_cache_lookups": _Family(
        "counter",
        "Lookups of cached parts by result: hit, stale, miss, bypassed",
        ("source", "result"),
    ),
    "bff_answer_cache_lookups": _Family(
        "counter", "Lookups of whole cached answers by result: hit or miss", ("aggregate", "result")
    ),
    "bff_upstream_breaker_state": _Family(
        "gauge-max",
        "Circuit breaker state per upstream service: 0 closed, 1 half-open, 2 open (the worst "
        "of the workers)",
        ("service",),
    ),
    "bff_cache_store_up": _Family(
        "gauge-min",
        "Whether the cache's store answers: 1 yes (or in-process), 0 Redis is taken for down "
        "and the cache is bypassed (the worst of the workers)",
        (),
    ),
    "bff_aggregation_deadline_seconds": _Family(
        "gauge-max", "The deadline of a whole aggregation (BFF_TIMEOUT_MS)", ()
    ),
    "bff_upstream_requests": _Family(
        "counter",
        "Requests the gateway meant to send to each upstream service (before retries)",
        ("service",),
    ),
    "bff_upstream_retries": _Family(
        "counter", "Retries sent (a failed batch split in two counts as one)", ("service",)
    ),
    "bff_upstream_batch_ids": _Family(
        "histogram",
        "Ids per cross-request batch request, per upstream service (BFF_BATCH)",
        ("service",),
        BATCH_BUCKETS,
    ),
    "bff_upstream_hedges": _Family("counter", "Hedged requests sent", ("service",)),
    "bff_upstream_hedges_won": _Family(
        "counter", "Hedged requests whose answer came first", ("service",)
    ),
    "bff_upstream_over_budget": _Family(
        "counter",
        "Retries and hedges not sent because the service's retry budget was spent",
        ("service",),
    ),
    "bff_upstream_refused": _Family(
        "counter",
        "Requests refused at once because the service's circuit breaker was open",
        ("service",),
    ),
    "bff_edge_refusals": _Family(
        "counter",
        "Requests refused at the edge before any upstream was called, by reason: "
        "invalid_token, missing_token, identity_unavailable, rate_limited, "
        "rate_limits_unavailable",
        ("reason",),
    ),
    "bff_writes": _Family(
        "counter",
        "Writes by mutation and outcome: sent (the upstream took it), rejected (the upstream "
        "refused it), failed (not carried out, or the upstream failed), unknown (sent, no "
        "answer: the outcome is unknown), replayed (a key's stored answer), conflict (the "
        "key's first request still running), mismatch (the key with another body), invalid "
        "(refused before anything was sent)",
        ("mutation", "outcome"),
    ),
    "bff_write_duration_seconds": _Family(
        "histogram",
        "How long each write carried out took, from its key's claim to its answer (replays "
        "and refusals of a key are not counted here)",
        ("mutation",),
    ),
}
#: How a write ended (bff_writes_total), see ``FAMILIES``.
WRITE_OUTCOMES = (
    "sent",
    "rejected",
    "failed",
    "unknown",
    "replayed",
    "conflict",
    "mismatch",
    "invalid",
)
#: Why the edge refuses a request (bff_edge_refusals_total).
EDGE_REFUSALS = (
    "invalid_token",
    "missing_token",
    "identity_unavailable",
    "rate_limited",
    "rate_limits_unavailable",
)
_UPSTREAM_COUNTERS = (
    "bff_upstream_requests",
    "bff_upstream_retries",
    "bff_upstream_hedges",
    "bff_upstream_hedges_won",
    "bff_upstream_over_budget",
    "bff_upstream_refused",
)

#: (family name, label values)
Key = tuple[str, tuple[str, ...]]


class _Snapshot(msgspec.Struct):
    """One worker's totals, as it writes them to the metrics directory."""

    pid: int
    counters: list[tuple[str, tuple[str, ...], float]]
    histograms: list[tuple[str, tuple[str, ...], list[float]]]
    gauges: list[tuple[str, tuple[str, ...], float]]


class Metrics:
    """The gateway's metrics: totals kept in this process, exposed in Prometheus' format."""

    def __init__(self, *, directory: str | None = None) -> None:
        #: where the workers of one server keep their totals (None: one process)
        self.directory = (
            directory if directory is not None else (os.environ.get(METRICS_DIR_VARIABLE) or None)
        )
        self._counters: dict[Key, float] = {}
        #: per series: one count per bucket (the last is +Inf), then the sum
        self._histograms: dict[Key, list[float]] = {}
        self._gauges: dict[Key, float] = {}
        # The hot path's keys, built once per label combination.
        self._part_keys: dict[tuple[str, str, str], Key] = {}
        self._request_keys: dict[tuple[str, str, int], Key] = {}
        self._encoder = msgspec.json.Encoder()
        self._flusher: asyncio.Task[None] | None = None

    # -- declaring ----------------------------------------------------------------------------

    def declare(
        self,
        aggregates: Iterable[tuple[str, Iterable[tuple[str, bool]]]],
        services: Iterable[str],
        reasons: Iterable[str],
    ) -> None:
        """Create every series the declarations allow, at zero: a rate over a series that
        appears only with its first failure would miss that failure."""
        outcomes = ["ok", *reasons]
        for aggregate, sources in aggregates:
            for result in ("hit", "miss"):
                self._counters.setdefault(("bff_answer_cache_lookups", (aggregate, result)), 0.0)
            for source, cached in sources:
                self._histogram(("bff_part_duration_seconds", (source,)))
                for outcome in outcomes:
                    self._counters.setdefault(
                        ("bff_part_outcomes", (aggregate, source, outcome)), 0.0
                    )
                if cached:
                    for result in CACHE_RESULTS:
                        self._counters.setdefault(("bff_cache_lookups", (source, result)), 0.0)
        for service in services:
            for name in _UPSTREAM_COUNTERS:
                self._counters.setdefault((name, (service,)), 0.0)

    def upstream(self, service: str) -> UpstreamMeter:
        return UpstreamMeter(self, service)

    # -- the hot path -------------------------------------------------------------------------

    def count(self, key: Key, amount: float = 1.0) -> None:
        counters = self._counters
        counters[key] = counters.get(key, 0.0) + amount

    def set_gauge(self, key: Key, value: float) -> None:
        self._gauges[key] = value

    def cache_health(self, up: bool) -> None:
        self._gauges[("bff_cache_store_up", ())] = 1.0 if up else 0.0

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request answered: ``method`` is the client's own (any text), counted as
        ``_labels.method_label`` says; ``route`` is a route's template, or ``unmatched``."""
        # Bounded before it is a key: the keys' cache must not grow with invented methods.
        label = KNOWN_METHODS.get(method, "OTHER")
        raw = (route, label, status)
        key = self._request_keys.get(raw)
        if key is None:
            key = self._request_keys[raw] = (
                "bff_http_request_duration_seconds",
                (route, label, str(status)),
            )
        self._observe(key, seconds)

    def declare_write(self, mutation: str) -> None:
        """A mutation's writes, at zero (its name is declared: never a client's)."""
        for outcome in WRITE_OUTCOMES:
            self._counters.setdefault(("bff_writes", (mutation, outcome)), 0.0)
        self._histogram(("bff_write_duration_seconds", (mutation,)))

    def observe_write(self, mutation: str, outcome: str, seconds: float | None) -> None:
        """One write of ``mutation`` ended (``outcome``: one of :data:`WRITE_OUTCOMES`);
        ``seconds``: how long it took, when it was carried out (``None``: a key's replay or
        refusal, or a request refused before)."""
        self.count(("bff_writes", (mutation, outcome)))
        if seconds is not None:
            self._observe(("bff_write_duration_seconds", (mutation,)), seconds)

    def declare_edge(self) -> None:
        """The edge's refusals, at zero."""
        for reason in EDGE_REFUSALS:
            self._counters.setdefault(("bff_edge_refusals", (reason,)), 0.0)

    def refused(self, reason: str) -> None:
        """A request refused at the edge (one of :data:`EDGE_REFUSALS`)."""
        self.count(("bff_edge_refusals", (reason,)))

    def observe_answer(self, aggregate: str, hit: bool) -> None:
        """A lookup of a whole cached answer."""
        self.count(("bff_answer_cache_lookups", (aggregate, "hit" if hit else "miss")))

    def observe_parts(
        self, aggregate: str, outcomes: Iterable[PartOutcome], cached_sources: frozenset[str]
    ) -> None:
        """Every part of one aggregation: its outcome, duration and cache result."""
        counters = self._counters
        part_keys = self._part_keys
        for outcome in outcomes:
            name = outcome.name
            raw = (aggregate, name, outcome.reason or "ok")
            key = part_keys.get(raw)
            if key is None:
                key = part_keys[raw] = ("bff_part_outcomes", raw)
            counters[key] = counters.get(key, 0.0) + 1.0
            if outcome.duration:
                self._observe(("bff_part_duration_seconds", (name,)), outcome.duration)
            if name in cached_sources and outcome.reason != "dependency_failed":
                lookup = ("bff_cache_lookups", (name, outcome.cache or "miss"))
                counters[lookup] = counters.get(lookup, 0.0) + 1.0

    def _observe(self, key: Key, value: float, buckets: tuple[float, ...] = BUCKETS) -> None:
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histogram(key, buckets)
        histogram[bisect_left(buckets, value)] += 1.0
        histogram[-1] += value

    def _histogram(self, key: Key, buckets: tuple[float, ...] = BUCKETS) -> list[float]:
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histograms[key] = [0.0] * (len(buckets) + 2)
        return histogram

    def batch_observer(self, service: str) -> Callable[[int], None]:
        """How one service's batch requests count their ids (``bff_upstream_batch_ids``)."""
        key: Key = ("bff_upstream_batch_ids", (service,))
        self._histogram(key, BATCH_BUCKETS)

        def observe(ids: int) -> None:
            self._observe(key, float(ids), BATCH_BUCKETS)

        return observe

    # -- exposing -----------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format of every metric (of every worker, with several)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._merged()))
        return generate_latest(registry)

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(
            pid=os.getpid(),
            counters=[(name, labels, v) for (name, labels), v in self._counters.items()],
            histograms=[(name, labels, v) for (name, labels), v in self._histograms.items()],
            gauges=[(name, labels, v) for (name, labels), v in self._gauges.items()],
        )

    def _merged(self) -> _Snapshot:
        own = self._snapshot()
        if self.directory is None:
            return own
        counters = dict(self._counters)
        histograms = {key: list(values) for key, values in self._histograms.items()}
        gauges = dict(self._gauges)
        for other in self._others():
            alive = _alive(other.pid)
            for name, labels, value in other.counters:
                key = (name, tuple(labels))
                counters[key] = counters.get(key, 0.0) + value
            for name, labels, values in other.histograms:
                key = (name, tuple(labels))
                mine = histograms.get(key)
                histograms[key] = (
                    list(values)
                    if mine is None
                    else [a + b for a, b in zip(mine, values, strict=True)]
                )
            if not alive:
                continue
            for name, labels, value in other.gauges:
                key = (name, tuple(labels))
                if key not in gauges:
                    gauges[key] = value
                elif FAMILIES[name].kind == "gauge-max":
                    gauges[key] = max(gauges[key], value)
                else:
                    gauges[key] = min(gauges[key], value)
        return _Snapshot(
            pid=own.pid,
            counters=[(n, labels, v) for (n, labels), v in counters.items()],
            histograms=[(n, labels, v) for (n, labels), v in histograms.items()],
            gauges=[(n, labels, v) for (n, labels), v in gauges.items()],
        )

    def _others(self) -> Iterator[_Snapshot]:
        assert self.directory is not None
        own = f"worker-{os.getpid()}.json"
        decoder = msgspec.json.Decoder(_Snapshot)
        for path in Path(self.directory).glob("worker-*.json"):
            if path.name == own:
                continue
            try:
                yield decoder.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError):
                continue  # gone, or being replaced: the next scrape sees it

    # -- several workers ----------------------------------------------------------------------

    def start(self) -> None:
        """With a metrics directory: write this worker's totals there every second."""
        if self.directory is not None and self._flusher is None:
            self.flush()
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_every_second(), name="bff-metrics-flush"
            )

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
            self.flush()

    async def _flush_every_second(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY_S)
            self.flush()

    def flush(self) -> None:
        """Write this worker's totals (atomically: a reader never sees half a file)."""
        assert self.directory is not None
        path = Path(self.directory) / f"worker-{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_bytes(self._encoder.encode(self._snapshot()))
            temporary.replace(path)
        except OSError as exc:
            logger.warning("could not write metrics to %s: %s", self.directory, exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Collector(Collector):
    def __init__(self, snapshot: _Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}

        def family(name: str) -> Metric:
            found = families.get(name)
            if found is None:
                spec = FAMILIES[name]
                labels = list(spec.labels)
                if spec.kind == "counter":
                    found = CounterMetricFamily(name, spec.help, labels=labels)
                elif spec.kind == "histogram":
                    found = HistogramMetricFamily(name, spec.help, labels=labels)
                else:
                    found = GaugeMetricFamily(name, spec.help, labels=labels)
                families[name] = found
            return found

        for name, labels, value in sorted(self._snapshot.counters):
            counter = family(name)
            assert isinstance(counter, CounterMetricFamily)
            counter.add_metric(list(labels), value)
        for name, labels, values in sorted(self._snapshot.histograms):
            histogram = family(name)
            assert isinstance(histogram, HistogramMetricFamily)
            cumulative, buckets = 0.0, []
            bounds = (*FAMILIES[name].buckets, float("inf"))
            for bound, count in zip(bounds, values[:-1], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            histogram.add_metric(list(labels), buckets, values[-1])
        for name, labels, value in sorted(self._snapshot.gauges):
            gauge = family(name)
            assert isinstance(gauge, GaugeMetricFamily)
            gauge.add_metric(list(labels), value)
        yield from families.values()


class UpstreamMeter:
    """One upstream service's counters and breaker gauge, their keys built once."""

    __slots__ = (
        "_breaker",
        "_metrics",
        "hedges",
        "hedges_won",
        "over_budget",
        "refused",
        "requests",
        "retries",
    )

    def __init__(self, metrics: Metrics, service: str) -> None:
        self._metrics = metrics
        labels = (service,)
        self.requests = _Increment(metrics, ("bff_upstream_requests", labels))
        self.retries = _Increment(metrics, ("bff_upstream_retries", labels))
        self.hedges = _Increment(metrics, ("bff_upstream_hedges", labels))
        self.hedges_won = _Increment(metrics, ("bff_upstream_hedges_won", labels))
        self.over_budget = _Increment(metrics, ("bff_upstream_over_budget", labels))
        self.refused = _Increment(metrics, ("bff_upstream_refused", labels))
        self._breaker: Key = ("bff_upstream_breaker_state", labels)

    def breaker(self, state: str) -> None:
        self._metrics.set_gauge(self._breaker, BREAKER_STATE_VALUES[state])


class _Increment:
    __slots__ = ("_counters", "_key")

    def __init__(self, metrics: Metrics, key: Key) -> None:
        self._counters = metrics._counters
        self._key = key

    def inc(self) -> None:
        counters = self._counters
        counters[self._key] = counters.get(self._key, 0.0) + 1.0
