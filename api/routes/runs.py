"""Run status lookups (our own API, v1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from ..errors import ApiError
from ..schemas import Envelope, Run, RunResponse

router = APIRouter(prefix="/api/v1", tags=["runs"])


@router.get(
    "/runs/{runId}",
    response_model=RunResponse,
    responses={404: {"model": Envelope}, 503: {"model": Envelope}},
)
async def run_status(
    request: Request, runId: Annotated[str, Path(min_length=1, max_length=1024)]
) -> RunResponse:
    """A run's current status, as folded from its events by the worker."""
    status = await request.app.state.store.get_run_status(runId)
    if status is None:
        raise ApiError(404, f"no run {runId}", runId)
    return RunResponse(run=Run.of(status))
