"""A job: its incidents and their times, and its run history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from lineage_faust.domain.incidents import summarize
from lineage_faust.store import RunQuery

from .. import incidents as incident_service
from ..schemas import IncidentRecord, IncidentStats, JobIncidents, JobRuns, JobSummary, Run
from ..summary import summarise
from .common import Cursor, Limit, encoded_names, errors, json_response, store_of

router = APIRouter(prefix="/api/v1", tags=["jobs"])
Name = Annotated[str, Path(min_length=1, max_length=1024)]


@router.get(
    "/jobs/{namespace:path}/{job}/runs", response_model=JobRuns, responses=errors(400, 401, 503)
)
async def job_runs(
    request: Request, namespace: Name, job: Name, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """A job's runs newest first (by start), with figures over the page. Namespaces such as
    ``airflow://prod`` must be URL-encoded (``airflow:%2F%2Fprod``)."""
    namespace, job = encoded_names(request, "jobs", "runs", (namespace, job))
    query = RunQuery(namespace=namespace, job=job)
    page = await store_of(request).list_runs(query, limit, cursor or None)
    return json_response(
        JobRuns(
            namespace=namespace,
            job=job,
            summary=JobSummary(**summarise(page.runs)),
            count=len(page.runs),
            runs=[Run.of(r) for r in page.runs],
            nextCursor=page.next_cursor,
        )
    )


@router.get(
    "/jobs/{namespace:path}/{job}", response_model=JobIncidents, responses=errors(400, 401, 503)
)
async def job(request: Request, namespace: Name, job: Name) -> Response:
    """A job's incidents: those still open, and over the last 7 and 30 days how many and
    their p50/p90 time to detect, acknowledge and resolve (seconds from the failure)."""
    namespace, job = encoded_names(request, "jobs", None, (namespace, job))
    store = store_of(request)
    found, truncated = await incident_service.incidents_since(
        store, incident_service.window(30), namespace, job
    )
    week = incident_service.window(7)
    public = request.app.state.settings.public_url
    return json_response(
        JobIncidents(
            namespace=namespace,
            job=job,
            last7Days=IncidentStats(**summarize([i for i in found if i.opened_at >= week])),
            last30Days=IncidentStats(**summarize(found)),
            open=[IncidentRecord.of(i, public) for i in found if i.is_open],
            truncated=truncated,
        )
    )
