"""Prometheus metrics of one app, rendered at ``GET /metrics``.

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``dizuo serve --workers N``) makes every
worker write to shared files and ``/metrics`` sums them, whichever worker answers.
"""

from __future__ import annotations

import os
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


M = TypeVar("M", Counter, Histogram)


class Children(Generic[M]):
    """A labelled metric's children by their label values, found with one dict read: the metric's
    own ``labels()`` checks its arguments and takes a lock on every call, four times a call."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self.children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = self.registry
        self.requests = Children(
            Counter(
                "dizuo_requests",
                "Requests answered, by endpoint, model alias and status.",
                ("endpoint", "model", "status"),
                registry=registry,
            )
        )
        self.latency = Children(
            Histogram(
                "dizuo_request_seconds",
                "Time from request to the last byte of the answer.",
                ("endpoint",),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.first_byte = Children(
            Histogram(
                "dizuo_upstream_first_byte_seconds",
                "Time until a deployment's first byte (TTFT for streams).",
                ("deployment",),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.tokens = Children(
            Counter(
                "dizuo_tokens",
                "Tokens metered, by model alias, deployment and kind (prompt or completion).",
                ("model", "deployment", "kind"),
                registry=registry,
            )
        )
        self.guard = Children(
            Counter(
                "dizuo_guard_findings",
                "Entities the data-risk guard found, by direction (prompt or answer) and action taken.",
                ("direction", "action"),
                registry=registry,
            )
        )
        self.upstream_errors = Children(
            Counter(
                "dizuo_upstream_errors",
                "Failed upstream attempts, by deployment and error code.",
                ("deployment", "code"),
                registry=registry,
            )
        )
        self.deployment_up = Gauge(
            "dizuo_deployment_up",
            "1 while a deployment's circuit is closed or probing, 0 while open.",
            ("deployment",),
            registry=registry,
            multiprocess_mode="min",
        )
        self.deployment_latency = Gauge(
            "dizuo_deployment_latency_seconds",
            "Moving average of a deployment's latency (TTFT for streams).",
            ("deployment",),
            registry=registry,
            multiprocess_mode="max",
        )
        self.in_flight = Gauge(
            "dizuo_in_flight_requests",
            "Requests being answered now.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
