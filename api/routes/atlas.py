"""Atlas's three OpenLineage endpoints: same paths, same parameters, same envelope."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from lineage_faust.store import MAX_PAGE_SIZE, Store

from ..auth import authenticated
from ..errors import ApiError
from ..schemas import AtlasEvent, Envelope

router = APIRouter(prefix="/api/atlas/v2/openlineage", tags=["atlas"])
ERRORS = {
    400: {"model": Envelope, "description": "Bad parameter or pagingState"},
    401: {"model": Envelope, "description": "No or wrong credentials (when configured)"},
    404: {"model": Envelope, "description": "No such event"},
    503: {"model": Envelope, "description": "The store is unavailable; retry shortly"},
}
GUARDED = [Depends(authenticated)]


def _store(request: Request) -> Store:
    return request.app.state.store


@router.get("/runs/{runId}", response_model=Envelope, responses=ERRORS, dependencies=GUARDED)
async def events_by_run(
    request: Request,
    runId: Annotated[str, Path(min_length=1, max_length=1024)],
    pageSize: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 25,
    pagingState: Annotated[str | None, Query(max_length=4096)] = None,
) -> Envelope:
    """A run's events, newest first. Pass ``nextPagingState`` back as ``pagingState``."""
    page = await _store(request).get_events(runId, pageSize, pagingState or None)
    events = [AtlasEvent.of(e) for e in page.events]
    return Envelope(
        success=True,
        runId=runId,
        eventCount=len(events),
        events=events,
        pageSize=pageSize,
        nextPagingState=page.next_cursor,
    )


@router.get(
    "/runs/{runId}/events/{eventId}",
    response_model=Envelope,
    responses=ERRORS,
    dependencies=GUARDED,
)
async def event_by_id(
    request: Request,
    runId: Annotated[str, Path(min_length=1, max_length=1024)],
    eventId: Annotated[str, Path(max_length=64, json_schema_extra={"format": "uuid"})],
) -> Envelope:
    try:
        event_uuid = uuid.UUID(eventId)
    except ValueError:
        raise ApiError(400, f"eventId {eventId[:64]!r} is not a UUID", runId) from None
    event = await _store(request).get_event(runId, event_uuid)
    if event is None:
        raise ApiError(404, f"no event {event_uuid} in run {runId}", runId)
    return Envelope(
        success=True, runId=runId, eventCount=1, events=[AtlasEvent.of(event)], pageSize=1
    )


@router.get("/health", response_model=Envelope, responses={503: {"model": Envelope}})
async def health(request: Request) -> Envelope:
    """Checks the store with a real round trip."""
    await _store(request).health()
    return Envelope(success=True, message="OpenLineage event storage is healthy")
