"""Incidents' lifecycles for the run-state agent: alerts open and join incidents, successful
runs and datasets written again resolve them. The rules are ``domain.incidents``; here are
the store's reads and its compare-and-set writes (a change that loses a race is applied again
over what won), and what a resolution sends: a ``resolved`` alert, which takes the pages' way
to the webhooks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from lineage_faust.domain import incidents as lifecycle
from lineage_faust.domain.alerting import Alert, Kind
from lineage_faust.domain.incidents import Incident
from lineage_faust.worker.state import WorkerState

log = logging.getLogger(__name__)

ATTEMPTS = 20  # compare-and-set rounds for one incident before giving up for this batch
Change = Callable[[Incident | None], Incident | None]  # None: nothing to write
Completion = tuple[str, datetime]  # (subject, when it succeeded)


class Lifecycle:
    def __init__(self, state: WorkerState) -> None:
        self.state = state

    async def apply(
        self, alerts: Sequence[Alert], completions: Sequence[Completion]
    ) -> list[Alert]:
        """Open or join incidents for ``alerts``, recover what ``completions`` and ``fresh``
        alerts name; returns the resolve messages of the incidents this resolved."""
        w = self.state
        members: dict[str, list[Alert]] = {}
        for alert in alerts:
            if lifecycle.joins_incident(alert):
                members.setdefault(alert.incident_id, []).append(alert)
        recoveries: dict[str, list[Completion]] = {}
        # a dataset written again recovers it in the incident it is stale in (its lapse's own,
        # or the upstream failure's it joined)
        completions = [
            *completions,
            *((lifecycle.subject_of(a), a.raised_at) for a in alerts if a.kind == Kind.FRESH),
        ]
        if completions:
            subjects = [subject for subject, _ in completions]
            found = await w.retrying(
                "read incidents of jobs", partial(w.store.incidents_of_subjects, subjects)
            )
            for subject, at in completions:
                if subject in found:
                    recoveries.setdefault(found[subject], []).append((subject, at))
        ids = list(dict.fromkeys([*members, *recoveries]))
        if not ids:
            return []
        known = await w.retrying("read incidents", partial(w.store.get_incidents, ids))
        now = datetime.now(UTC)
        notices = []
        metrics = w.stats.metrics
        for incident_id in ids:
            happened: list[str] = []  # what the change that was written did
            change = partial(
                self._change,
                incident_id,
                members.get(incident_id, []),
                recoveries.get(incident_id, []),
                now,
                happened,
            )
            saved = await self.save(incident_id, known.get(incident_id), change)
            if saved is None:
                continue
            for what in happened:
                metrics.incident_changes.labels(what).inc()
            if "opened" in happened:
                self._observe(saved, "detect")
            if "resolved" in happened:
                notices.append(lifecycle.resolve_notice(saved, now))
                self._observe(saved, "resolve")
        return notices

    def _change(
        self,
        incident_id: str,
        alerts: list[Alert],
        recoveries: list[Completion],
        now: datetime,
        happened: list[str],
        current: Incident | None,
    ) -> Incident | None:
        happened.clear()
        incident = current
        before = None if current is None else current.to_dict()
        # the page first: it opens the incident, what joined it follows
        for alert in sorted(alerts, key=lambda a: (a.paged_by is not None, a.raised_at)):
            if incident is None:
                incident = lifecycle.open_incident(alert, incident_id)
                if alert.paged_by is not None:
                    incident.page_alert_id = alert.paged_by
                happened.append("opened")
            elif not incident.is_open:
                incident = lifecycle.reopen(incident, alert)
                if incident.is_open:
                    happened.append("reopened")
            else:
                lifecycle.join(incident, alert)
                happened.append("joined")
        if incident is None:
            return None
        resolved = False
        for subject, at in sorted(recoveries, key=lambda r: r[1]):
            resolved = lifecycle.recover(incident, subject, at, now) or resolved
        if resolved:
            happened.append("resolved")
        if before is not None and incident.to_dict() == before:
            return None  # nothing new (a redelivery, a success of a job not failing)
        return incident

    async def save(
        self, incident_id: str, current: Incident | None, change: Change
    ) -> Incident | None:
        """Apply ``change`` to the incident as kept and write it over the version read; on a
        lost race, read it again and apply again. The incident as written (None: unchanged)."""
        w = self.state
        for _ in range(ATTEMPTS):
            copy = None if current is None else Incident.from_dict(current.to_dict())
            changed = change(copy)
            if changed is None:
                return None
            if await w.retrying("save incident", partial(w.store.save_incident, changed)):
                return changed
            found = await w.retrying("read incident", partial(w.store.get_incidents, [incident_id]))
            current = found.get(incident_id)
            if current is not None and _same(current, changed):
                return current  # ours: a write applied whose answer was lost (a retried LWT)
        log.error(
            "incident %s: %d writes lost a race; left for the next batch", incident_id, ATTEMPTS
        )
        return None

    def _observe(self, incident: Incident, stage: str) -> None:
        seconds = lifecycle.timings(incident)[stage]
        if seconds is not None:
            self.state.stats.metrics.incident_times.labels(stage).observe(seconds)


def _same(a: Incident, b: Incident) -> bool:
    return {**a.to_dict(), "version": 0} == {**b.to_dict(), "version": 0}
