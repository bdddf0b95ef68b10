"""``POST /api/v1/lineage``: the endpoint of OpenLineage's HTTP transport.

Airflow (or any OpenLineage client) configured with ``{"type": "http", "url": "http://host:8000"}``
posts here unchanged. Valid events go to the same Kafka topic, keyed the same way, as the
Kafka transport would send them, so the worker cannot tell the two paths apart.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import ApiError
from ..ingest import BodyError, BodyTooLarge, BrokerUnavailable, gunzip, read_events
from ..schemas import Ingested, IngestError
from .common import errors

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["ingest"])

_BODY_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "description": "One OpenLineage event (RunEvent, JobEvent, DatasetEvent)",
        },
        {"type": "array", "items": {"type": "object"}, "minItems": 1},
    ]
}
_EXAMPLE = {
    "eventType": "START",
    "eventTime": "2026-11-21T10:00:00.000Z",
    "producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    "run": {"runId": "019a2b7c-5d1e-7f3a-9c4b-2e8f6a1d3c5b"},
    "job": {"namespace": "default", "name": "etl_orders.load_orders"},
    "inputs": [],
    "outputs": [],
}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/lineage",
    status_code=201,
    response_model=Ingested,
    responses={
        **errors(401, 413, 415, 503),
        400: {
            "model": IngestError,
            "description": "Invalid JSON or invalid events; ``details`` says what is wrong "
            "with each event (by its index). Nothing of the request was forwarded.",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _BODY_SCHEMA, "example": _EXAMPLE}},
            "description": "One event or a JSON array of events; `Content-Encoding: gzip` "
            "accepted. Limit: LINEAGE_API_MAX_BODY_BYTES (after decompression).",
        }
    },
)
async def ingest(request: Request) -> JSONResponse:
    """Validate with the worker's own models, produce to the events topic, answer 201 once
    the broker acknowledged every event. A request with any invalid event is refused whole
    (400, per-event reasons), so a corrected resend is exact."""
    settings = request.app.state.settings
    limit = settings.api_max_body_bytes
    metrics = request.app.state.metrics
    body = await _read_body(request, limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    try:
        if encoding in ("gzip", "x-gzip", "deflate"):
            body = gunzip(body, limit)
        elif encoding not in ("", "identity"):
            raise ApiError(415, f"Content-Encoding {encoding[:40]!r} is not supported (use gzip)")
        messages, problems = read_events(body, settings.max_event_bytes)
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except BodyError as exc:
        metrics.ingest_rejected.labels(reason="bad_body").inc()
        raise ApiError(400, str(exc)) from None
    if problems:
        for p in problems:
            metrics.ingest_rejected.labels(reason=p.reason).inc()
        first = problems[0]
        log.warning(
            "ingest: refused a request of %d events, %d invalid (first: #%d %s)",
            len(messages) + len(problems),
            len(problems),
            first.index,
            first.reason,  # not the detail: it may quote the event's content
        )
        raise ApiError(
            400,
            f"{len(problems)} of {len(messages) + len(problems)} events are invalid; "
            "none was forwarded",
            details=[p.as_dict() for p in problems],
        )
    try:
        await request.app.state.forwarder.send(messages)
    except BrokerUnavailable as exc:
        log.warning("ingest: %s", exc)
        raise ApiError(503, f"events not accepted: {exc}; retry shortly") from None
    metrics.ingest_accepted.inc(len(messages))
    body_out = Ingested(accepted=len(messages), topic=request.app.state.forwarder.topic)
    return JSONResponse(body_out.model_dump(), status_code=201)
