"""Alerts as the worker raised them: failures (with Airflow retries understood), stuck and
overdue runs, recoveries, stale datasets, resolutions. Newest first, cursor-paginated."""

from __future__ import annotations

from enum import StrEnum

from fastapi import APIRouter, Request, Response

from lineage_faust.store.queries import AlertQuery

from ..schemas import AlertList, AlertOut
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
