"""A job's run history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from lineage_faust.store import RunQuery

from ..schemas import JobRuns, JobSummary, Run
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
