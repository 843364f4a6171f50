"""Prometheus metrics of the API (GET /metrics): one registry per app, so several apps in one process (tests,
benchmarks) keep their own counts."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, pool):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("faced_http_requests", "HTTP requests answered, by endpoint, method and status",
                                ("endpoint", "method", "status"), registry=registry)
        self.latency = Histogram("faced_http_request_duration_seconds", "time to answer, by endpoint and status",
                                 ("endpoint", "method", "status"), buckets=BUCKETS, registry=registry)
        self.faces = Counter("faced_faces_processed", "faces detected in request images, by endpoint",
                             ("endpoint",), registry=registry)
        self.busy = Counter("faced_http_busy_rejections", "requests answered 503 (pool full or timeout), by reason",
                            ("reason",), registry=registry)
        self.depth = Gauge("faced_pool_depth", "inference requests admitted and not finished (waiting or running)",
                           registry=registry)
        self.depth.set_function(pool.depth)
        self.running = Gauge("faced_pool_running", "inference requests running", registry=registry)
        self.running.set_function(pool.running)
        self.capacity = Gauge("faced_pool_capacity", "inference requests admitted at most (workers + queue)",
                              registry=registry)
        self.capacity.set(pool.capacity)

    def observe(self, endpoint: str, method: str, status: int, seconds: float, faces: int = 0,
                busy_reason: str | None = None) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, method, str(status)).observe(seconds)
        if faces:
            self.faces.labels(endpoint).inc(faces)
        if busy_reason:
            self.busy.labels(busy_reason).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)
