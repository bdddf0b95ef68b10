"""Service endpoints, open without credentials: health and Prometheus metrics."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..incidents import incidents_since, window
from ..schemas import ApiHealth
from .common import errors, store_of

router = APIRouter(tags=["service"])
log = logging.getLogger(__name__)
INCIDENTS_EVERY_S = 30.0


@router.get("/api/v1/health", response_model=ApiHealth, responses=errors(503))
async def health(request: Request) -> ApiHealth:
    """200 when the store answers a real round trip (503 otherwise). ``broker`` is only
    what HTTP ingest needs: the read endpoints work without it."""
    await store_of(request).health()
    forwarder = request.app.state.forwarder
    broker = (
        "ok" if forwarder.ready else ("connecting" if forwarder.configured else "not configured")
    )
    return ApiHealth(store="ok", broker=broker)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: lineage_api_requests_total, lineage_api_request_seconds, ingest,
    lineage_incident_seconds (p50/p90 over 7 and 30 days) and lineage_incidents."""
    await refresh_incidents(request)
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


async def refresh_incidents(request: Request) -> None:
    """The incident gauges from the store, at most every 30 s (a store that does not answer
    leaves them as they were: /metrics still answers)."""
    metrics = request.app.state.metrics
    if time.monotonic() - metrics.incidents_read_at < INCIDENTS_EVERY_S:
        return
    metrics.incidents_read_at = time.monotonic()
    try:
        found, _ = await incidents_since(store_of(request), window(30))
    except Exception as exc:  # the store is down: health says so
        log.warning("metrics: incidents not read (%s)", type(exc).__name__)
        return
    week = window(7)
    metrics.set_incidents("7d", [i for i in found if i.opened_at >= week])
    metrics.set_incidents("30d", found)
