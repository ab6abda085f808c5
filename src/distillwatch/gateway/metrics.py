"""Prometheus metrics of one gateway (its own registry, so tests and apps do not collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
_LAG_BUCKETS = (
    *(b / 10_000 for b in (1, 2, 3, 5, 7)),
    *(b / 1000 for b in (1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 200, 500)),
    1.0,
    5.0,
)


class GatewayMetrics:
    """Requests, actions, decision latency, queue depths and upstream errors."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "distillwatch_requests", "Requests answered", ["endpoint", "status"], registry=r
        )
        self.actions = Counter(
            "distillwatch_actions",
            "Enforcement applied to requests, by action and where it came from",
            ["action", "source"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "distillwatch_decision_seconds",
            "Time the engine took to observe an exchange and decide",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_lag_seconds = Histogram(
            "distillwatch_engine_lag_seconds",
            "Time from an exchange being logged (durable) to the engine having observed it",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.engine_errors = Counter(
            "distillwatch_engine_errors", "Engine failures while observing", registry=r
        )
        self.upstream_errors = Counter(
            "distillwatch_upstream_errors", "Upstream failures", ["kind"], registry=r
        )
        self.log_errors = Counter(
            "distillwatch_log_errors", "Exchanges that could not be made durable", registry=r
        )
        self.commit_seconds = Histogram(
            "distillwatch_log_commit_seconds",
            "Time to make one batch of exchanges durable (write + fsync)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_size = Histogram(
            "distillwatch_log_commit_size",
            "Exchanges per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.log_queue = Gauge(
            "distillwatch_log_queue_depth", "Exchanges waiting for group commit", registry=r
        )
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._action_children: dict[tuple[str, str], Counter] = {}
        self.engine_queue = Gauge(
            "distillwatch_engine_queue_depth", "Exchanges waiting for the engine", registry=r
        )

    def count(self, endpoint: str, status: int) -> None:
        """One answered request (label children cached: this runs on every request)."""
        key = (endpoint, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(endpoint, str(status))
        child.inc()

    def acted(self, action: str, source: str) -> None:
        """The enforcement applied to one request."""
        key = (action, source)
        child = self._action_children.get(key)
        if child is None:
            child = self._action_children[key] = self.actions.labels(action, source)
        child.inc()

    def lagged(self, seconds: float) -> None:
        self.engine_lag_seconds.observe(seconds)

    def observed(self, seconds: float, ok: bool) -> None:
        self.decision_seconds.observe(seconds)
        if not ok:
            self.engine_errors.inc()

    def committed(self, size: int, seconds: float) -> None:
        self.commit_size.observe(size)
        self.commit_seconds.observe(seconds)

    def track_queues(self, log_depth: Callable[[], int], engine_depth: Callable[[], int]) -> None:
        self.log_queue.set_function(log_depth)
        self.engine_queue.set_function(engine_depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
