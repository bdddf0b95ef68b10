"""Service endpoints, open without credentials: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..schemas import ApiHealth
from .common import errors, store_of

router = APIRouter(tags=["service"])


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
    """Prometheus metrics: lineage_api_requests_total, lineage_api_request_seconds, ingest."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
