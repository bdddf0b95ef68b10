"""An incident's lifecycle: pure transitions, no I/O.

An incident is ``open`` when its page is raised, ``acknowledged`` by someone on call,
``resolved`` by hand or by itself, and a resolved incident may ``reopen``. It tracks its
*subjects*, what failed in it: ``job:<namespace>/<name>`` for a run's failure (the run's job;
a later successful run of the same job is its recovery) and ``dataset:<namespace>/<name>``
for a stale dataset (written again: recovered). When every subject has recovered after it
failed, the incident resolves by itself.

Every change is kept with who made it and when (``changes``); a store keeps the record with a
``version`` and writes it only over the version it read (compare-and-set), so two workers and
an API racing on one incident apply their changes one after the other, never over each other.

The times the product exists for come from here: failure (the failed run's end) -> paged
(the page raised) -> acknowledged -> resolved (``timings``, ``summarize``).
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lineage_faust.domain.alerting import ALERT_NAMESPACE, Alert, Kind
from lineage_faust.domain.times import iso_ms

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
STATES = (OPEN, ACKNOWLEDGED, RESOLVED)
AUTO = "lineage-faust"  # who resolves an incident whose pipeline recovered

# kinds of alert that open or join an incident (the others are its recovery, or info only)
INCIDENT_KINDS = frozenset({Kind.FAILED, Kind.STUCK, Kind.OVERDUE, Kind.STALE})
MAX_ALERTS = 500  # alert ids kept on one incident (a run tree's failures: a handful)
MAX_CHANGES = 100  # changes kept on one incident (a flapping job reopens it again and again)


class TransitionRefused(ValueError):
    """The change does not apply to the incident's state (resolve what is resolved...)."""


@dataclass(slots=True)
class Incident:
    incident_id: str
    state: str
    kind: str  # the page's kind
    severity: str
    namespace: str  # the page's job (or dataset) namespace and name
    name: str
    page_alert_id: str
    page_run_id: str
    failed_at: datetime  # the failure's event time: where time to detect starts
    opened_at: datetime  # the page raised
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    # subject -> when it failed / recovered (ISO, event time)
    pending: dict[str, str] = field(default_factory=dict)
    recovered: dict[str, str] = field(default_factory=dict)
    alert_ids: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    reopened: int = 0
    version: int = 0  # the store's: the record is written only over this version

    @property
    def is_open(self) -> bool:
        return self.state != RESOLVED

    @property
    def subjects(self) -> list[str]:
        return [*self.pending, *self.recovered]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("failed_at", "opened_at", "acknowledged_at", "resolved_at"):
            data[key] = iso_ms(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        values = dict(data)
        for key in ("failed_at", "opened_at", "acknowledged_at", "resolved_at"):
            values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
        return cls(**values)


def subject_of(alert: Alert) -> str:
    """What failed, as an incident tracks it."""
    if alert.dataset_name:
        return f"dataset:{alert.dataset_namespace}/{alert.dataset_name}"
    return job_subject(alert.namespace, alert.job)


def job_subject(namespace: str, job: str) -> str:
    return f"job:{namespace}/{job}"


def joins_incident(alert: Alert) -> bool:
    """An alert that opens an incident or joins one: paged, or recorded under a page."""
    return alert.kind in INCIDENT_KINDS and (alert.paged or alert.paged_by is not None)


def failure_time(alert: Alert) -> datetime:
    return alert.ended_at or alert.raised_at


def reopen_claim(incident_id: str, reopened: int) -> str:
    """The incident-ledger key of an incident's n-th reopening: one page per reopening."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{incident_id}/reopen/{reopened}"))


def fresh_incident_id(alert_id: str) -> str:
    """A new incident for a failure whose run tree's incident was resolved long ago."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{alert_id}/incident"))


def resolve_notice_id(incident_id: str, resolution: int) -> str:
    """The id of an incident's n-th resolve message (one per resolution, whoever sends it)."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{incident_id}/resolved/{resolution}"))


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new failure goes: its incident, the incident-ledger key whose first claimant
    pages (None: it does not page), or the page it joins."""

    incident_id: str
    claim: str | None
    joins_page: str | None = None


def place_failure(
    alert: Alert,
    tree_id: str,
    tree: Incident | None,
    by_job: Incident | None,
    quiet_s: float,
    now: datetime,
) -> Placement:
    """The incident of a run tree's new final failure. Its tree's incident while that is open;
    else the open incident its job is failing in (it joins, unpaged); else, within
    ``quiet_s`` of the resolution of the last incident it was in, that one reopens (and pages
    once more); else a new incident."""
    if tree is not None and tree.is_open:
        return Placement(tree_id, tree_id)
    if by_job is not None and by_job.is_open:
        return Placement(by_job.incident_id, None, by_job.page_alert_id)
    resolved = [i for i in (tree, by_job) if i is not None]
    if not resolved:
        return Placement(tree_id, tree_id)
    last = max(resolved, key=lambda i: i.resolved_at or i.opened_at)
    recovered = last.recovered.get(subject_of(alert))
    if recovered is not None and datetime.fromisoformat(recovered) >= failure_time(alert):
        return Placement(last.incident_id, None, last.page_alert_id)  # late, from before
    if last.resolved_at is not None and (now - last.resolved_at).total_seconds() <= quiet_s:
        return Placement(last.incident_id, reopen_claim(last.incident_id, last.reopened + 1))
    if tree is None:
        return Placement(tree_id, tree_id)
    fresh = fresh_incident_id(alert.alert_id)
    return Placement(fresh, fresh)


def _change(incident: Incident, at: datetime, state: str, by: str, note: str = "") -> None:
    incident.changes.append({"at": iso_ms(at), "state": state, "by": by, "note": note})
    del incident.changes[:-MAX_CHANGES]


def open_incident(alert: Alert, incident_id: str) -> Incident:
    """The incident an alert's page opens."""
    incident = Incident(
        incident_id=incident_id,
        state=OPEN,
        kind=alert.kind,
        severity=alert.severity,
        namespace=alert.dataset_namespace or alert.namespace,
        name=alert.dataset_name or alert.job,
        page_alert_id=alert.alert_id,
        page_run_id=alert.run_id,
        failed_at=failure_time(alert),
        opened_at=alert.raised_at,
    )
    _change(incident, alert.raised_at, OPEN, "page", f"{alert.kind}: {subject_of(alert)}")
    return join(incident, alert)


def join(incident: Incident, alert: Alert) -> Incident:
    """``alert``'s failure is part of ``incident``: its subject waits for a recovery (again,
    if it had recovered before this failure)."""
    subject, at = subject_of(alert), failure_time(alert)
    if alert.alert_id not in incident.alert_ids and len(incident.alert_ids) < MAX_ALERTS:
        incident.alert_ids.append(alert.alert_id)
    recovered = incident.recovered.get(subject)
    if recovered is not None and datetime.fromisoformat(recovered) < at:
        del incident.recovered[subject]
    if subject not in incident.recovered:
        earlier = incident.pending.get(subject)
        if earlier is None or datetime.fromisoformat(earlier) > at:
            incident.pending[subject] = iso_ms(at)
    failed_at = min(incident.failed_at, at)
    incident.failed_at = failed_at
    return incident


def reopen(incident: Incident, alert: Alert) -> Incident:
    """A resolved incident fails again within the quiet period: it opens again (and pages:
    on-call was told it was resolved)."""
    recovered = incident.recovered.get(subject_of(alert))
    if incident.is_open or (
        recovered is not None and datetime.fromisoformat(recovered) >= failure_time(alert)
    ):  # open already, or a failure from before the recovery that arrived late
        return join(incident, alert)
    incident.state = OPEN
    incident.reopened += 1
    incident.acknowledged_at = incident.acknowledged_by = None
    incident.resolved_at = incident.resolved_by = None
    _change(incident, alert.raised_at, OPEN, "page", f"reopened: {subject_of(alert)} failed again")
    return join(incident, alert)


def recover(incident: Incident, subject: str, at: datetime, now: datetime) -> bool:
    """``subject`` succeeded at ``at`` (a run's end, a dataset's write). Returns True when that
    resolves the incident: every subject recovered after it failed."""
    failed = incident.pending.get(subject)
    if failed is None or datetime.fromisoformat(failed) >= at:
        return False  # not in it, or a success from before the failure (out of order)
    del incident.pending[subject]
    incident.recovered[subject] = iso_ms(at)
    if incident.pending or not incident.is_open:
        return False
    names = ", ".join(s.split(":", 1)[1] for s in incident.recovered)
    resolve(incident, AUTO, now, f"recovered: {names}")
    return True


def acknowledge(incident: Incident, by: str, now: datetime, note: str = "") -> Incident:
    if incident.state != OPEN:
        raise TransitionRefused(f"incident {incident.incident_id} is {incident.state}")
    incident.state = ACKNOWLEDGED
    incident.acknowledged_at, incident.acknowledged_by = now, by
    _change(incident, now, ACKNOWLEDGED, by, note)
    return incident


def resolve(incident: Incident, by: str, now: datetime, note: str = "") -> Incident:
    if incident.state == RESOLVED:
        raise TransitionRefused(f"incident {incident.incident_id} is resolved already")
    incident.state = RESOLVED
    incident.resolved_at, incident.resolved_by = now, by
    _change(incident, now, RESOLVED, by, note)
    return incident


def resolutions(incident: Incident) -> int:
    """How many times the incident was resolved (its resolve messages are numbered so)."""
    return sum(1 for c in incident.changes if c["state"] == RESOLVED)


def resolve_notice(incident: Incident, now: datetime) -> Alert:
    """The message a resolution sends through the webhooks (as an alert of kind
    ``resolved``, so it takes the pages' way: outbox, alerts topic, webhook queues)."""
    kind = Kind.RESOLVED
    last = incident.changes[-1] if incident.changes else {}
    recovered = ", ".join(s.split(":", 1)[1] for s in incident.recovered)
    detail = last.get("note") or f"resolved by {incident.resolved_by}"
    if recovered and "recovered" not in detail:
        detail = f"{detail} (recovered: {recovered})"
    is_dataset = incident.kind in (Kind.STALE, Kind.FRESH)
    return Alert(
        alert_id=resolve_notice_id(incident.incident_id, resolutions(incident)),
        kind=kind.value,
        severity="info",
        paged=True,
        run_id=incident.page_run_id,
        namespace=incident.namespace,
        job="" if is_dataset else incident.name,
        state=RESOLVED,
        raised_at=now,
        detail=detail,
        incident_id=incident.incident_id,
        dataset_namespace=incident.namespace if is_dataset else None,
        dataset_name=incident.name if is_dataset else None,
    )


# ---- time to detect, acknowledge, resolve ------------------------------------------------
def timings(incident: Incident) -> dict[str, float | None]:
    """Seconds from the failure to the page (detect), to acknowledgement, to resolution."""

    def since_failure(at: datetime | None) -> float | None:
        return max(0.0, (at - incident.failed_at).total_seconds()) if at else None

    return {
        "detect": since_failure(incident.opened_at),
        "acknowledge": since_failure(incident.acknowledged_at),
        "resolve": since_failure(incident.resolved_at),
    }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(incidents: Iterable[Incident]) -> dict[str, Any]:
    """Count and p50/p90 of time to detect, acknowledge and resolve (seconds)."""
    found = list(incidents)
    out: dict[str, Any] = {"count": len(found), "open": sum(i.is_open for i in found)}
    for stage in ("detect", "acknowledge", "resolve"):
        values = [t for i in found if (t := timings(i)[stage]) is not None]
        out[stage] = {"p50": percentile(values, 50), "p90": percentile(values, 90)}
    return out
