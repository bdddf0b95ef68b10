"""The freshness sweep: datasets that outlived their expectation raise ``stale`` (once per
lapse), and ``fresh`` when written again. Run by the worker that owns run-updates partition 0,
on its sweep (``track_runs``): one worker judges each dataset once per sweep interval.

Crash-safe in this order: the alerts are recorded in the outbox first (their ids come from
the lapse, so a sweep after a crash raises the same ones), then the lapses are opened and
closed, then the alerts published.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

from lineage_faust.domain import alerting
from lineage_faust.domain.alerting import Alert, Kind
from lineage_faust.domain.freshness import (
    Lapse,
    LastWrite,
    expectation_for,
    fresh_alert,
    is_stale,
    stale_alert,
)
from lineage_faust.domain.incidents import Incident, job_subject
from lineage_faust.domain.lineage import Direction, dataset_node
from lineage_faust.store.dataset_history import last_good_write
from lineage_faust.store.incident_subjects import incidents_by_subject
from lineage_faust.store.lineage_walk import graph_around
from lineage_faust.worker.state import WorkerState

log = logging.getLogger(__name__)
UPSTREAM_DEPTH = 10  # lineage levels searched for a failed writer upstream of a stale dataset
UPSTREAM_NODES = 500


class DatasetWatch:
    def __init__(self, state: WorkerState, publish: Callable[[list[Alert]], Awaitable[None]]):
        """``publish``: sends alerts the outbox returned, then marks them published."""
        self.state, self.publish = state, publish

    async def sweep(self, now: datetime | None = None) -> None:
        w = self.state
        expectations = w.settings.dataset_expectations
        if not expectations:
            return
        now = now or datetime.now(UTC)
        store = w.store
        lapses = {
            (lapse.write.namespace, lapse.write.name): lapse
            for lapse in await w.retrying("read lapses", store.open_lapses)
        }
        datasets = await w.retrying("read datasets", store.written_datasets)
        alerts: list[Alert] = []
        opened: list[Lapse] = []
        closed: list[tuple[str, str]] = []
        for namespace, name in datasets:
            expectation = expectation_for(f"{namespace}/{name}", expectations)
            lapse = lapses.pop((namespace, name), None)
            if expectation is None:
                if lapse is not None:  # its expectation was removed
                    closed.append((namespace, name))
                continue
            write: LastWrite | None = await w.retrying(
                "read last write", partial(last_good_write, store, namespace, name)
            )
            if write is None:
                continue
            if lapse is not None:
                if write.at <= lapse.write.at:
                    continue  # still stale: paged once already
                alerts.append(fresh_alert(lapse, write, now))
                closed.append((namespace, name))
            if is_stale(write, expectation, now):
                opened.append(Lapse(write, expectation.max_age_s, now))
                alerts.append(stale_alert(write, expectation, now))
        closed.extend(lapses)  # datasets no longer in the store
        if not alerts and not closed:
            return
        alerts = [await self.with_its_cause(a) for a in alerts]
        pending = await w.record_alerts(alerts)
        reopened = {(lapse.write.namespace, lapse.write.name) for lapse in opened}
        for namespace, name in closed:
            if (namespace, name) not in reopened:
                await w.retrying("close lapse", partial(store.close_lapse, namespace, name))
        for lapse in opened:
            await w.retrying("open lapse", partial(store.open_lapse, lapse))
        if opened or closed:
            log.info("freshness: %d datasets stale, %d lapses closed", len(opened), len(closed))
        await self.publish(pending)

    async def with_its_cause(self, alert: Alert) -> Alert:
        """A stale dataset whose lineage has a job upstream failing, in an open incident,
        since the dataset's last good write, is that failure's consequence: the alert joins
        that incident (no page of its own; the incident resolves once the dataset is written
        again too). Staleness with no failed upstream pages by itself."""
        if alert.kind != Kind.STALE or alert.ended_at is None:
            return alert
        cause = await self.failed_upstream(alert)
        if cause is None:
            return alert
        log.info(
            "freshness: %s/%s is stale downstream of incident %s: joins it",
            alert.dataset_namespace,
            alert.dataset_name,
            cause.incident_id,
        )
        return alerting.in_incident(alert, cause.incident_id, cause.page_alert_id)

    async def failed_upstream(self, alert: Alert) -> Incident | None:
        """The open incident of the nearest job upstream that failed after the last good
        write (``alert.ended_at``), if any."""
        w = self.state
        assert alert.dataset_namespace is not None and alert.dataset_name is not None
        start = dataset_node(alert.dataset_namespace, alert.dataset_name)
        graph = await w.retrying(
            "read lineage",
            partial(
                graph_around, w.store, start, Direction.UPSTREAM, UPSTREAM_DEPTH, UPSTREAM_NODES
            ),
        )
        jobs = [n for n in graph.nodes if n.is_job]  # nearest first
        if not jobs:
            return None
        subjects = [job_subject(j.namespace, j.name) for j in jobs]
        kept = await w.retrying(
            "read incidents of jobs", partial(incidents_by_subject, w.store, subjects)
        )
        for subject in subjects:
            incident = kept.get(subject)
            if incident is None or not incident.is_open:
                continue
            failed = incident.pending.get(subject)
            if failed is not None and datetime.fromisoformat(failed) > alert.ended_at:
                return incident
        return None
