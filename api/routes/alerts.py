"""Alerts as the worker raised them: failures (with Airflow retries understood), stuck and
overdue runs, recoveries, stale datasets. Newest first, cursor-paginated; and one incident
with every alert in it."""

from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Path, Request, Response

from lineage_faust.store.queries import AlertQuery

from ..errors import ApiError
from ..schemas import AlertList, AlertOut, IncidentOut
from .common import Cursor, Limit, errors, json_response, store_of
from .runs import IsoTime, utc

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@router.get("/alerts", response_model=AlertList, responses=errors(400, 401, 503))
async def alerts(
    request: Request,
    since: IsoTime = None,
    severity: Severity | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Alerts raised at or after ``since``, of at least ``severity`` (``warning`` means
    warning and critical), newest first."""
    query = AlertQuery(utc("since", since), severity.value if severity else None)
    page = await store_of(request).list_alerts(query, limit, cursor)
    public = request.app.state.settings.public_url
    items = [AlertOut(**a.to_dict(public)) for a in page.alerts]
    return json_response(AlertList(count=len(items), alerts=items, nextCursor=page.next_cursor))


INCIDENT_ALERTS = 500  # an incident's alerts shown at most (a run tree's failures)


@router.get(
    "/incidents/{incidentId}", response_model=IncidentOut, responses=errors(400, 401, 404, 503)
)
async def incident(
    request: Request, incidentId: str = Path(min_length=1, max_length=64)
) -> Response:
    """One incident: the alert that paged for it (the first failure of a run tree) and the
    alerts that joined it, in the order their runs ended."""
    found = await store_of(request).incident_alerts(incidentId, INCIDENT_ALERTS)
    if not found:
        raise ApiError(404, f"no incident {incidentId}")
    public = request.app.state.settings.public_url
    # in the order things happened: a group's alerts are raised together, their runs ended
    # one after the other
    found.sort(key=lambda a: (a.ended_at or a.raised_at, a.raised_at, a.alert_id))
    items = [AlertOut(**a.to_dict(public)) for a in found]
    page = next((a for a in items if a.paged and not a.pagedBy), None)
    return json_response(
        IncidentOut(
            incidentId=incidentId, page=page, rootCause=items[0], count=len(items), alerts=items
        )
    )
