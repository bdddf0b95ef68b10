"""Incidents: their lifecycles (listed, one with every alert in it), acknowledged and resolved
by hand, and their times to detect, acknowledge and resolve summed up."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.security import HTTPBasicCredentials

from lineage_faust.domain.times import iso_ms
from lineage_faust.store.queries import IncidentQuery

from .. import incidents as service
from .. import lineage_graph
from ..auth import basic_scheme
from ..errors import ApiError
from ..schemas import (
    AlertOut,
    IncidentChangeIn,
    IncidentList,
    IncidentOut,
    IncidentRecord,
    IncidentSummary,
)
from .common import Cursor, Limit, errors, json_response, store_of
from .runs import IsoTime, utc

router = APIRouter(prefix="/api/v1", tags=["incidents"])
IncidentId = Annotated[str, Path(min_length=1, max_length=64)]
Days = Annotated[int, Query(ge=1, le=90, description="The window: incidents opened since")]
INCIDENT_ALERTS = 500  # an incident's alerts shown at most (a run tree's failures)


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@router.get("/incidents", response_model=IncidentList, responses=errors(400, 401, 503))
async def incidents(
    request: Request,
    state: State | None = None,
    since: IsoTime = None,
    namespace: Annotated[str | None, Query(max_length=1024)] = None,
    job: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Incidents newest first (by when they opened): in a ``state``, opened ``since``, of a
    ``namespace`` and ``job`` (the page's, or any job failing in it)."""
    query = IncidentQuery(state.value if state else None, utc("since", since), namespace, job)
    page = await store_of(request).list_incidents(query, limit, cursor)
    public = request.app.state.settings.public_url
    items = [IncidentRecord.of(i, public) for i in page.incidents]
    return json_response(
        IncidentList(count=len(items), incidents=items, nextCursor=page.next_cursor)
    )


@router.get("/incidents/summary", response_model=IncidentSummary, responses=errors(400, 401, 503))
async def incident_summary(
    request: Request,
    days: Days = 7,
    namespace: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Incidents opened in the last ``days``: how many, and p50/p90 of time to detect,
    acknowledge and resolve (seconds from the failure), in all, per namespace and per job
    (worst time to resolve first)."""
    since = service.window(days)
    found, truncated = await service.incidents_since(store_of(request), since, namespace)
    return json_response(
        IncidentSummary(
            days=days, since=iso_ms(since), truncated=truncated, **service.summary(found)
        )
    )


@router.get(
    "/incidents/{incidentId}", response_model=IncidentOut, responses=errors(400, 401, 404, 503)
)
async def incident(request: Request, incidentId: IncidentId) -> Response:
    """One incident: its lifecycle, the alert that paged for it (the first failure of a run
    tree) and the alerts that joined it, in the order their runs ended."""
    store = store_of(request)
    found = await store.incident_alerts(incidentId, INCIDENT_ALERTS)
    record = (await store.get_incidents([incidentId])).get(incidentId)
    if not found:
        raise ApiError(404, f"no incident {incidentId}")
    public = request.app.state.settings.public_url
    # in the order things happened: a group's alerts are raised together, their runs ended
    # one after the other
    found.sort(key=lambda a: (a.ended_at or a.raised_at, a.raised_at, a.alert_id))
    items = [AlertOut(**a.to_dict(public)) for a in found]
    failures = [a for a in items if a.kind != "resolved"] or items
    page = next((a for a in failures if a.paged and not a.pagedBy), None)
    return json_response(
        IncidentOut(
            incidentId=incidentId,
            page=page,
            rootCause=failures[0],
            count=len(items),
            alerts=items,
            lifecycle=IncidentRecord.of(record, public) if record else None,
            blastRadius=await lineage_graph.blast_radius(store, record) if record else None,
        )
    )


async def _change(
    request: Request,
    incident_id: str,
    action: str,
    basic: HTTPBasicCredentials | None,
    body: IncidentChangeIn | None,
) -> Response:
    body = body or IncidentChangeIn()
    who = service.who_of(basic.username if basic else None, body.by)
    changed = await service.change(
        store_of(request),
        request.app.state.forwarder,
        request.app.state.settings,
        incident_id,
        action,
        who,
        body.note,
    )
    return json_response(IncidentRecord.of(changed, request.app.state.settings.public_url))


@router.post(
    "/incidents/{incidentId}/acknowledge",
    response_model=IncidentRecord,
    responses=errors(400, 401, 404, 409, 503),
)
async def acknowledge(
    request: Request,
    incidentId: IncidentId,
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
    body: Annotated[IncidentChangeIn | None, Body()] = None,
) -> Response:
    """Someone is on it: an open incident becomes acknowledged (409 otherwise). Who: the
    HTTP Basic user (else ``by``), with an optional ``note``."""
    return await _change(request, incidentId, "acknowledge", basic, body)


@router.post(
    "/incidents/{incidentId}/resolve",
    response_model=IncidentRecord,
    responses=errors(400, 401, 404, 409, 503),
)
async def resolve(
    request: Request,
    incidentId: IncidentId,
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
    body: Annotated[IncidentChangeIn | None, Body()] = None,
) -> Response:
    """Resolve an open or acknowledged incident by hand (409 when it is resolved): its
    resolve message goes to every webhook, after its page. 503 when the broker is away."""
    return await _change(request, incidentId, "resolve", basic, body)
