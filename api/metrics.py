"""Prometheus metrics of the API: requests by route template and status, latency, ingest,
and the incidents' times to detect, acknowledge and resolve over 7 and 30 days.

Each app has its own registry (several apps can live in one test process). The middleware is
plain ASGI (no BaseHTTPMiddleware: it would add a task per request to every lookup).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lineage_faust.domain.incidents import STATES, summarize

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lineage_api_requests",
            "HTTP requests answered, by method, route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "lineage_api_request_seconds",
            "Time to answer, by method and route template",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingest_accepted = Counter(
            "lineage_api_ingested_events",
            "Events POSTed to /api/v1/lineage and acknowledged by the broker",
            registry=self.registry,
        )
        self.incident_times = Gauge(
            "lineage_incident_seconds",
            "Incidents opened in the window: p50/p90 seconds from the failure to the page "
            "(detect), to acknowledgement and to resolution (read from the store at most "
            "every 30 s)",
            ("stage", "quantile", "window"),
            registry=self.registry,
        )
        self.incident_counts = Gauge(
            "lineage_incidents",
            "Incidents opened in the window, by state now",
            ("state", "window"),
            registry=self.registry,
        )
        self.incidents_read_at = 0.0
        self.ingest_rejected = Counter(
            "lineage_api_rejected_events",
            "Events POSTed to /api/v1/lineage and refused, by reason",
            ("reason",),
            registry=self.registry,
        )

    def set_incidents(self, window: str, incidents: list) -> None:
        """The incident gauges of one window (``7d``, ``30d``) from its incidents."""
        stats = summarize(incidents)
        for stage in ("detect", "acknowledge", "resolve"):
            for quantile in ("p50", "p90"):
                value = stats[stage][quantile]
                gauge = self.incident_times.labels(stage, quantile.replace("p", "0."), window)
                gauge.set(float("nan") if value is None else value)
        for state in STATES:
            found = sum(1 for i in incidents if i.state == state)
            self.incident_counts.labels(state, window).set(found)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            # the template, never the raw path: one series per endpoint, not per runId
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
