"""A job's run history."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Path, Request, Response

from lineage_faust.store import RunQuery

from ..schemas import JobRuns, JobSummary, Run
from ..summary import summarise
from .common import Cursor, Limit, errors, json_response, store_of

router = APIRouter(prefix="/api/v1", tags=["jobs"])
Name = Annotated[str, Path(min_length=1, max_length=1024)]


def names(request: Request, namespace: str, job: str) -> tuple[str, str]:
    """Namespace and job as the client encoded them: ``airflow:%2F%2Fprod`` arrives decoded,
    so the split is redone on the raw path (a job name may hold an encoded slash too)."""
    raw = request.scope.get("raw_path")
    if raw:
        parts = raw.decode("latin-1").split("/")  # '', api, v1, jobs, ns, job, runs
        if len(parts) == 7 and parts[3] == "jobs" and parts[6] == "runs":
            return unquote(parts[4]), unquote(parts[5])
    return namespace, job


@router.get(
    "/jobs/{namespace:path}/{job}/runs", response_model=JobRuns, responses=errors(400, 401, 503)
)
async def job_runs(
    request: Request, namespace: Name, job: Name, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """A job's runs newest first (by start), with figures over the page. Namespaces such as
    ``airflow://prod`` must be URL-encoded (``airflow:%2F%2Fprod``)."""
    namespace, job = names(request, namespace, job)
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
