"""Incidents for the run-state agent: which run tree a failure belongs to, and whether its
incident already paged. The rule is ``domain.alerting`` (``groups_by_tree``, ``in_incident``);
here are the lookups: a run's ancestors from the batch's states, then from the store, and the
store's incident ledger (the first alert to claim an incident pages for it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial

from lineage_faust.domain import alerting
from lineage_faust.domain.alerting import Alert
from lineage_faust.domain.incidents import Placement, job_subject, place_failure
from lineage_faust.domain.records import RunStatus
from lineage_faust.domain.runstate import RunState
from lineage_faust.worker.state import WorkerState

# Levels walked up from a failed run to its root: Airflow and dbt trees are 2-3 deep (job,
# model, statement); a producer's parent chain longer than this ends its tree there.
MAX_ANCESTRY = 8

Known = dict[str, RunState | RunStatus]


class Incidents:
    def __init__(self, state: WorkerState) -> None:
        self.state = state

    async def roots(self, runs: list[RunState], known: Known) -> dict[str, str]:
        """Each run's root run id: the facet's root where the producer names it, else the
        top of its parent chain as far as it is known (states first, then the store)."""
        w = self.state
        at: dict[str, RunState | RunStatus] = {r.run_id: r for r in runs}
        roots: dict[str, str] = {}
        for _ in range(MAX_ANCESTRY):
            missing: set[str] = set()
            for run_id, current in at.items():
                up = current.root_run_id or current.parent_run_id
                if up is None or up == current.run_id:
                    roots[run_id] = current.run_id
                elif up not in known:
                    missing.add(up)
            if missing:
                found = await w.retrying(
                    "read ancestors", partial(w.store.get_run_statuses, sorted(missing))
                )
                known.update(found)
            moved = {}
            for run_id, current in at.items():
                if run_id in roots:
                    continue
                up = current.root_run_id or current.parent_run_id
                assert up is not None
                if up in known:
                    moved[run_id] = known[up]
                else:
                    roots[run_id] = up  # not seen (yet): the top as far as is known
            at = moved
            if not at:
                break
        for run_id, current in at.items():
            roots[run_id] = current.run_id
        return roots

    async def assign(
        self, alerts: list[Alert], states: Mapping[str, RunState | None]
    ) -> list[Alert]:
        """``alerts`` with their incidents: a run tree's new final failures share the tree's
        incident, and only the first to claim it pages. Alerts already raised (noted in their
        run's state) are left as they are: the outbox returns them as first recorded."""
        w = self.state
        rules = w.settings.alert_rules
        new = [
            a
            for a in alerts
            if alerting.groups_by_tree(a, rules)
            and (s := states.get(a.run_id)) is not None
            and a.kind not in s.alerted
        ]
        if not new:
            return alerts
        known: Known = {run_id: s for run_id, s in states.items() if s is not None}
        runs = [states[a.run_id] for a in new]
        roots = await self.roots([r for r in runs if r is not None], known)
        tree = {a.alert_id: alerting.incident_of_tree(roots[a.run_id]) for a in new}
        placed = await self.place(new, tree)
        # within one group, the failure that ended first is the cause: it claims first (a
        # group's runs come in partition order, not in time order)
        first = sorted(new, key=lambda a: (a.ended_at or a.raised_at, a.alert_id))
        claims = [
            (claim, a.alert_id) for a in first if a.paged and (claim := placed[a.alert_id].claim)
        ]
        pagers = await w.retrying("claim incidents", partial(w.store.claim_incidents, claims))

        def placed_in(alert: Alert) -> Alert:
            place = placed[alert.alert_id]
            pager = place.joins_page or (pagers.get(place.claim) if place.claim else None)
            return alerting.in_incident(alert, place.incident_id, pager)

        return [placed_in(a) if a.alert_id in placed else a for a in alerts]

    async def place(self, new: list[Alert], tree: dict[str, str]) -> dict[str, Placement]:
        """Each new failure's incident (``domain.incidents.place_failure``): the incidents
        kept for its tree and its job, read once for the group."""
        w = self.state
        subjects = {a.alert_id: job_subject(a.namespace, a.job) for a in new}
        latest = await w.retrying(
            "read incidents of jobs",
            partial(w.store.incidents_of_subjects, list(set(subjects.values()))),
        )
        wanted = list({*tree.values(), *latest.values()})
        kept = await w.retrying("read incidents", partial(w.store.get_incidents, wanted))
        quiet_s, now = w.settings.alert_rules.quiet_s, datetime.now(UTC)
        return {
            a.alert_id: place_failure(
                a,
                tree[a.alert_id],
                kept.get(tree[a.alert_id]),
                kept.get(latest.get(subjects[a.alert_id], "")),
                quiet_s,
                now,
            )
            for a in new
        }
