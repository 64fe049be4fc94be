"""Prometheus metrics of one app: requests and latencies by route and status, scores by risk
band, the model in use. Each app owns its registry, so tests can build many apps.

Routes are labelled by their template (``/v1/audit/{score_id}``), never by the raw path, so
neither identifiers nor unknown URLs can blow up the label set. With several uvicorn workers
each process exposes its own counters (Prometheus sums them per scrape target).

The same middleware writes the access log (logger ``arscore.access``, one line per request:
method, route template, status, milliseconds). uvicorn's own access log is off: it writes the
raw path and query, and a path such as ``/v1/accounts/C0012345/actions`` holds an account
number, a HIPAA identifier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"
CONTENT_TYPE = CONTENT_TYPE_LATEST
access_logger = logging.getLogger("arscore.access")


class Metrics:
    """The collectors of one app and the text exposition of them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "arscore_http_requests",
            "HTTP requests by route template, method and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "arscore_http_request_duration_seconds",
            "HTTP request latency by route template, method and status code",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Counter(
            "arscore_scores",
            "Scores returned, by risk (collectibility) band",
            ["risk_band"],
            registry=self.registry,
        )
        self.stages = Histogram(
            "arscore_scoring_stage_seconds",
            "Time per stage of a score request (parse, inputs, history, snapshot, features, "
            "predict, contributions, reasons, policy, audit)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_unavailable = Counter(
            "arscore_audit_unavailable",
            "Score requests refused because the audit store could not record them",
            registry=self.registry,
        )
        self.model = Gauge(
            "arscore_model_info",
            "The model in use (value 1), by name, version, alias and artifact sha256",
            ["name", "version", "alias", "sha256"],
            registry=self.registry,
        )
        self.model_loaded_at = Gauge(
            "arscore_model_loaded_timestamp_seconds",
            "When the model in use was loaded (Unix time)",
            registry=self.registry,
        )

    def set_model(self, name: str, version: str, alias: str | None, sha256: str, at: float) -> None:
        """Show exactly one model as in use."""
        self.model.clear()
        self.model.labels(name=name, version=version, alias=alias or "", sha256=sha256).set(1)
        self.model_loaded_at.set(at)

    def count_scores(self, bands: Iterable[str]) -> None:
        """Count returned scores by band."""
        counts: dict[str, int] = {}
        for band in bands:
            counts[band] = counts.get(band, 0) + 1
        for band, n in counts.items():
            self.scores.labels(risk_band=band).inc(n)

    def observe_stages(self, seconds: dict[str, float]) -> None:
        """Record the stage timings of one score request."""
        for stage, value in seconds.items():
            self.stages.labels(stage=stage).observe(value)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        labels = (route, method, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every collector."""
        return generate_latest(self.registry)


def route_template(scope: Scope) -> str:
    """The matched route's path template, or ``unmatched``."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED_ROUTE


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (no BaseHTTPMiddleware overhead), and
    writing its access log line when ``access_log`` is on."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            route, method = route_template(scope), scope["method"]
            self.metrics.observe(route, method, status, elapsed)
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 1),
                    },
                )
