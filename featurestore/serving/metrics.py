"""Prometheus metrics of the feature server: a small registry of counters and histograms.

Rendered in the Prometheus text exposition format (version 0.0.4) at ``GET /metrics``. Values
are per process; with ``serve --workers N`` any worker's ``/metrics`` answers with every
worker's series, labelled ``worker`` (:mod:`featurestore.serving.workers`).
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Counter", "Histogram", "MetricsRegistry", "ServingMetrics"]

LabelValues = tuple[str, ...]

_LATENCY_BUCKETS_S = (
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
)
_ENTITY_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_AGE_BUCKETS_S = (1, 10, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _format_number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass
class Counter:
    """A monotonically increasing count, per label values."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    _values: dict[LabelValues, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the series named by ``labels``."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        """The current value of one series (0 when never incremented)."""
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        """Text-format lines of this metric."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            lines.append(
                f"{self.name}{_format_labels(self.label_names, labels)} {_format_number(value)}"
            )
        return lines


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Histogram:
    """Observations counted into cumulative buckets, per label values."""

    name: str
    help: str
    buckets: tuple[float, ...]
    label_names: tuple[str, ...] = ()
    _series: dict[LabelValues, _Series] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation in the series named by ``labels``."""
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _Series([0] * (len(self.buckets) + 1))
            series.counts[index] += 1
            series.total += value
            series.count += 1

    def observe_many(self, values: Sequence[float], *labels: str) -> None:
        """Record a few observations in one series (one lock; no numpy for short lists)."""
        if not values:
            return
        buckets = self.buckets
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _Series([0] * (len(buckets) + 1))
            counts = series.counts
            for value in values:
                counts[bisect.bisect_left(buckets, value)] += 1
            series.total += sum(values)
            series.count += len(values)

    def observe_array(self, values: npt.NDArray[np.float64], *labels: str) -> None:
        """Record a numpy array of observations in one series, counted vectorized."""
        if not len(values):
            return
        indexes = np.searchsorted(np.asarray(self.buckets), values, side="left")
        counts = np.bincount(indexes, minlength=len(self.buckets) + 1)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _Series([0] * (len(self.buckets) + 1))
            for i, n in enumerate(counts.tolist()):
                series.counts[i] += n
            series.total += float(values.sum())
            series.count += len(values)

    def count(self, *labels: str) -> int:
        """How many observations one series holds."""
        series = self._series.get(labels)
        return series.count if series is not None else 0

    def render(self) -> list[str]:
        """Text-format lines of this metric."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted(
                (labels, list(s.counts), s.total, s.count) for labels, s in self._series.items()
            )
        for labels, counts, total, count in items:
            cumulative = 0
            bounds = [*self.buckets, math.inf]
            for bound, bucket_count in zip(bounds, counts, strict=True):
                cumulative += bucket_count
                le = f'le="{_format_number(bound)}"'
                lines.append(
                    f"{self.name}_bucket{_format_labels(self.label_names, labels, le)} {cumulative}"
                )
            suffix = _format_labels(self.label_names, labels)
            lines.append(f"{self.name}_sum{suffix} {_format_number(total)}")
            lines.append(f"{self.name}_count{suffix} {count}")
        return lines


class MetricsRegistry:
    """An ordered collection of metrics rendered together.

    Example:
        >>> registry = MetricsRegistry()
        >>> hits = registry.counter("demo_hits_total", "Hits.", ("route",))
        >>> hits.inc("/a")
        >>> print(registry.render().splitlines()[-1])
        demo_hits_total{route="/a"} 1
    """

    def __init__(self) -> None:
        self._metrics: list[Counter | Histogram] = []

    def counter(self, name: str, help_text: str, label_names: tuple[str, ...] = ()) -> Counter:
        """Create and register a counter."""
        metric = Counter(name, help_text, label_names)
        self._metrics.append(metric)
        return metric

    def histogram(
        self,
        name: str,
        help_text: str,
        buckets: tuple[float, ...],
        label_names: tuple[str, ...] = (),
    ) -> Histogram:
        """Create and register a histogram with upper bounds ``buckets`` (sorted)."""
        metric = Histogram(name, help_text, tuple(sorted(buckets)), label_names)
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        """Every metric in the Prometheus text exposition format."""
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class ServingMetrics:
    """The feature server's metrics, in one registry."""

    def __init__(self) -> None:
        self.registry = MetricsRegistry()
        self.request_duration = self.registry.histogram(
            "featurestore_http_request_duration_seconds",
            "Time from request start to response end, by route.",
            _LATENCY_BUCKETS_S,
            ("route",),
        )
        self.requests = self.registry.counter(
            "featurestore_http_requests_total",
            "HTTP requests answered, by route and status code.",
            ("route", "status"),
        )
        self.online_read_duration = self.registry.histogram(
            "featurestore_online_read_duration_seconds",
            "Time spent in the online store lookup of one request (including on-demand views).",
            _LATENCY_BUCKETS_S,
        )
        self.entities_per_request = self.registry.histogram(
            "featurestore_entities_per_request",
            "Entity rows per get-online-features request.",
            _ENTITY_BUCKETS,
        )
        self.value_age = self.registry.histogram(
            "featurestore_served_value_age_seconds",
            "Age (request time minus event timestamp) of values served as PRESENT, by view.",
            _AGE_BUCKETS_S,
            ("view",),
        )
        self.registry_reloads = self.registry.counter(
            "featurestore_registry_reloads_total",
            "Times the server picked up a new registry.",
        )

    def render(self) -> str:
        """All metrics in the Prometheus text format."""
        return self.registry.render()
