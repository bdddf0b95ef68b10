"""Incidents changed by hand, and their times summed up.

Acknowledging and resolving go through the same compare-and-set as the worker's changes (read,
change, write over the version read; a lost race is applied again over what won). A
resolution sends its resolve message the way pages go: recorded in the outbox, published to
the deployment's alerts topic in the partition of the worker that owns the incident's run,
whose notify agent delivers it to every webhook after the incident's page. A resolve asked
again while its message is still unpublished (the broker was away) publishes it then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from lineage_faust.domain import incidents as lifecycle
from lineage_faust.domain.alerting import APP_HEADER, alert_partition
from lineage_faust.domain.incidents import Incident, TransitionRefused
from lineage_faust.settings import Settings
from lineage_faust.store import Store
from lineage_faust.store.queries import IncidentQuery

from .errors import ApiError
from .ingest import BrokerUnavailable, Forwarder

ATTEMPTS = 20
SUMMARY_READ = 5000  # incidents read for one summary at most (then: truncated)


async def change(
    store: Store,
    forwarder: Forwarder,
    settings: Settings,
    incident_id: str,
    action: str,
    who: str,
    note: str,
) -> Incident:
    """Acknowledge or resolve an incident by hand; the incident as written."""
    apply: Callable[[Incident, str, datetime, str], Incident] = {
        "acknowledge": lifecycle.acknowledge,
        "resolve": lifecycle.resolve,
    }[action]
    if action == "resolve" and not forwarder.ready:
        raise ApiError(503, "the broker is not connected: a resolve message could not be sent")
    for _ in range(ATTEMPTS):
        current = (await store.get_incidents([incident_id])).get(incident_id)
        if current is None:
            raise ApiError(404, f"no incident {incident_id}")
        try:
            changed = apply(current, who, datetime.now(UTC), note)
        except TransitionRefused as exc:
            if action == "resolve" and await send_resolution(store, forwarder, settings, current):
                return current  # resolved before, its message unsent until now
            raise ApiError(409, str(exc)) from None
        if await store.save_incident(changed):
            if action == "resolve":
                await send_resolution(store, forwarder, settings, changed)
            return changed
    raise ApiError(503, f"incident {incident_id} kept changing; try again")


async def send_resolution(
    store: Store, forwarder: Forwarder, settings: Settings, incident: Incident
) -> bool:
    """Publish the incident's latest resolve message unless it was published already."""
    at = incident.resolved_at or datetime.now(UTC)
    notice = lifecycle.resolve_notice(incident, at)
    pending = await store.record_alerts([notice])
    if not pending:
        return False
    notice = pending[0]
    alert = notice.to_dict(settings.public_url)
    try:
        await forwarder.publish(
            settings.alerts_topic,
            orjson.dumps(alert),
            notice.run_id.encode(),
            alert_partition(notice, settings.partitions),
            [(APP_HEADER, settings.app_id.encode())],
        )
    except BrokerUnavailable as exc:
        raise ApiError(
            503, f"resolved, but its resolve message was not sent ({exc}); resolve it again"
        ) from exc
    await store.mark_alerts_published([notice.alert_id])
    return True


async def incidents_since(
    store: Store, since: datetime, namespace: str | None = None, job: str | None = None
) -> tuple[list[Incident], bool]:
    """Incidents opened since ``since`` (at most SUMMARY_READ; True: there were more)."""
    query = IncidentQuery(since=since, namespace=namespace, job=job)
    found: list[Incident] = []
    cursor = None
    while len(found) < SUMMARY_READ:
        page = await store.list_incidents(query, min(1000, SUMMARY_READ - len(found)), cursor)
        found += page.incidents
        if (cursor := page.next_cursor) is None:
            return found, False
    return found, True


def summary(incidents: list[Incident]) -> dict:
    """The whole window, per namespace and per job (worst time to resolve first)."""
    by_namespace: dict[str, list[Incident]] = {}
    by_job: dict[tuple[str, str], list[Incident]] = {}
    for incident in incidents:
        by_namespace.setdefault(incident.namespace, []).append(incident)
        by_job.setdefault((incident.namespace, incident.name), []).append(incident)
    jobs = [
        {"namespace": ns, "name": name, **lifecycle.summarize(found)}
        for (ns, name), found in by_job.items()
    ]
    jobs.sort(key=lambda j: -(j["resolve"]["p90"] or j["resolve"]["p50"] or 0))
    return {
        "total": lifecycle.summarize(incidents),
        "byNamespace": [
            {"namespace": ns, "name": None, **lifecycle.summarize(found)}
            for ns, found in sorted(by_namespace.items())
        ],
        "byJob": jobs,
    }


def window(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def who_of(user: str | None, given: str | None) -> str:
    """Who changed it: the HTTP Basic user; else the name given; else the API."""
    return user or (given or "").strip() or "api"


__all__ = ["change", "incidents_since", "summary", "who_of", "window"]
