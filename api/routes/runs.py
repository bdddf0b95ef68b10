"""Run lookups: one run with its parent and children, and filtered run listings."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from lineage_faust.store import RunQuery

from ..errors import ApiError
from ..schemas import Run, RunLink, RunList, RunResponse
from .common import Cursor, Limit, RunIdPath, errors, json_response, store_of

router = APIRouter(prefix="/api/v1", tags=["runs"])
CHILDREN_INLINE = 100


class State(StrEnum):
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"
    ABORT = "ABORT"
    UNKNOWN = "UNKNOWN"


def utc(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 query time; without an offset it is UTC. (Not pydantic's datetime: it
    would also take a bare number as a Unix time, which the schema does not promise.)"""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name}: {value[:40]!r} is not an ISO 8601 time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


IsoTime = Annotated[
    str | None,
    Query(
        max_length=64,
        description="ISO 8601 time; without an offset, UTC",
        json_schema_extra={"format": "date-time"},
    ),
]


def run_href(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}"


@router.get("/runs/{runId}", response_model=RunResponse, responses=errors(400, 401, 404, 503))
async def run_status(request: Request, runId: RunIdPath) -> Response:
    """A run's current status as folded from its events, its parent (a task run's DAG run)
    and its children (a DAG run's task runs; the first 100, then ``/children``)."""
    store = store_of(request)
    status = await store.get_run_status(runId)
    if status is None:
        raise ApiError(404, f"no run {runId}", runId)
    children = await store.list_children(runId, CHILDREN_INLINE)
    parent = None
    if status.parent_run_id:
        found = await store.get_run_status(status.parent_run_id)
        parent = RunLink(
            runId=status.parent_run_id,
            href=run_href(status.parent_run_id),
            namespace=found.namespace if found else None,
            job=found.job if found else None,
            state=found.state if found else None,
        )
    return json_response(
        RunResponse(
            run=Run.of(status),
            parent=parent,
            children=[Run.of(c) for c in children.runs],
            childrenNextCursor=children.next_cursor,
        )
    )


@router.get("/runs/{runId}/children", response_model=RunList, responses=errors(400, 401, 503))
async def run_children(
    request: Request, runId: RunIdPath, limit: Limit = 100, cursor: Cursor = None
) -> Response:
    """All runs whose parent is this run, by start time (then runId), paginated."""
    page = await store_of(request).list_children(runId, limit, cursor or None)
    return json_response(
        RunList(
            count=len(page.runs), runs=[Run.of(r) for r in page.runs], nextCursor=page.next_cursor
        )
    )


@router.get("/runs", response_model=RunList, responses=errors(400, 401, 503))
async def list_runs(
    request: Request,
    state: Annotated[State | None, Query(description="Only runs in this state")] = None,
    namespace: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    job: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="Needs namespace")
    ] = None,
    since: IsoTime = None,
    until: IsoTime = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Runs newest first. With ``state``, ordered and bounded by when they entered it (a
    failed run by when it failed: "what failed in the last hour?"); otherwise by start."""
    if job is not None and namespace is None:
        raise ApiError(400, "job: a job filter needs its namespace")
    since_at, until_at = utc("since", since), utc("until", until)
    if since_at is not None and until_at is not None and since_at > until_at:
        raise ApiError(400, "since: must not be after until")
    query = RunQuery(
        state=state.value if state else None,
        namespace=namespace,
        job=job,
        since=since_at,
        until=until_at,
    )
    page = await store_of(request).list_runs(query, limit, cursor or None)
    return json_response(
        RunList(
            count=len(page.runs), runs=[Run.of(r) for r in page.runs], nextCursor=page.next_cursor
        )
    )
