"""What deserves an alert: pure functions over run states, no I/O.

One alert per condition per run: an alert's id is a UUIDv5 of ``(runId, kind)``, so whatever
raises it again (a redelivery, a restart, a second worker after a rebalance) raises the same
alert, which the store keeps once and the channels deliver once.

Kinds:

* ``failed`` — a run ended FAIL or ABORT and the policy pages for it;
* ``retrying_failure`` — an Airflow task try failed and Airflow will retry it
  (``taskInstance.try_number`` <= ``task.retries``): recorded, paged only under policy ``every``;
* ``stuck`` — a running run has had no event for longer than the idle threshold;
* ``overdue`` — a running run has run longer than ``factor`` x its job's typical duration;
* ``recovered`` — a run that was stuck or overdue completed after all (recorded; the
  incident's resolve message is what pages);
* ``stale`` — a dataset with a freshness expectation was not written successfully in time
  (``domain/freshness.py``); ``fresh`` — it was written again;
* ``resolved`` — an incident was resolved (``domain/incidents.py``): its resolve message.

Incidents (``LINEAGE_ALERT_GROUPING=incident``, the default): every alert carries an
``incidentId``. The final failures of one run tree (a DAG run and its tasks, a dbt job, its
models and their statements) share one incident, named after the tree's root run; the first of
them that pages opens it, and those that follow join it unpaged (``pagedBy`` names the page).
Other kinds are an incident each. ``none`` pages every failure the policy pages.

Policies (``LINEAGE_ALERT_POLICY``): ``every`` failed try pages; ``final`` (default) pages final
task failures and DAG-run failures; ``dag`` pages DAG-run failures only (runs without a parent).
Runs of STREAMING jobs never become stuck or overdue: they have no end.
"""

from __future__ import annotations

import dataclasses
import statistics
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lineage_faust.domain.identity import run_partition
from lineage_faust.domain.model import ticks_to_datetime
from lineage_faust.domain.runstate import RUNNING, RunState
from lineage_faust.domain.times import iso_ms

ALERT_NAMESPACE = uuid.UUID("6f1d0c3e-4b7a-5d2e-9c1f-0a8b7e6d5c4b")
APP_HEADER = "lineage.app"  # on every alert message: the deployment (app id) that raised it


class Policy(StrEnum):
    EVERY = "every"
    FINAL = "final"
    DAG = "dag"


class Grouping(StrEnum):
    INCIDENT = "incident"
    NONE = "none"


class Kind(StrEnum):
    FAILED = "failed"
    RETRYING = "retrying_failure"
    STUCK = "stuck"
    OVERDUE = "overdue"
    RECOVERED = "recovered"
    STALE = "stale"
    FRESH = "fresh"
    RESOLVED = "resolved"  # an incident resolved (by itself or by hand): its resolve message


SEVERITY = {
    Kind.FAILED: "critical",
    Kind.RETRYING: "info",
    Kind.STUCK: "warning",
    Kind.OVERDUE: "warning",
    Kind.RECOVERED: "info",
    Kind.STALE: "warning",
    Kind.FRESH: "info",
    Kind.RESOLVED: "info",
}
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class Limits:
    """Stuck/overdue thresholds for one job (defaults, or a namespace's or job's override)."""

    idle_s: float = 3600.0
    overdue_factor: float = 3.0
    min_samples: int = 3
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AlertRules:
    policy: Policy = Policy.FINAL
    grouping: Grouping = Grouping.INCIDENT
    defaults: Limits = Limits()
    # "namespace" or "namespace/job" -> limits; the job's entry wins over its namespace's
    overrides: Mapping[str, Limits] = field(default_factory=dict)
    # a failure this soon after its job's incident resolved reopens it (flapping) instead of
    # opening another
    quiet_s: float = 900.0

    def limits(self, namespace: str, job: str) -> Limits:
        return (
            self.overrides.get(f"{namespace}/{job}")
            or self.overrides.get(namespace)
            or self.defaults
        )


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    kind: str
    severity: str
    paged: bool  # False: recorded and visible, not sent to webhooks
    run_id: str
    namespace: str
    job: str
    state: str
    raised_at: datetime
    parent_run_id: str | None = None
    root_run_id: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    try_number: int | None = None
    detail: str = ""
    incident_id: str = ""  # "" -> an incident of its own (the alert's id)
    paged_by: str | None = None  # joined an incident: the alert that paged for it
    dataset_namespace: str | None = None  # stale / fresh: the dataset
    dataset_name: str | None = None
    # a failure's page: what it feeds downstream (counts, the nearest names; domain.lineage)
    blast_radius: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.incident_id:
            object.__setattr__(self, "incident_id", self.alert_id)

    def to_dict(self, api_url: str = "") -> dict[str, Any]:
        """The JSON shape every channel carries (alerts topic, webhooks, API, live stream)."""
        return {
            "alertId": self.alert_id,
            "kind": self.kind,
            "severity": self.severity,
            "paged": self.paged,
            "runId": self.run_id,
            "namespace": self.namespace,
            "job": self.job,
            "state": self.state,
            "raisedAt": iso_ms(self.raised_at),
            "parentRunId": self.parent_run_id,
            "rootRunId": self.root_run_id,
            "errorMessage": self.error_message,
            "stackTrace": self.stack_trace,
            "startedAt": iso_ms(self.started_at),
            "endedAt": iso_ms(self.ended_at),
            "tryNumber": self.try_number,
            "detail": self.detail,
            "incidentId": self.incident_id,
            "pagedBy": self.paged_by,
            "datasetNamespace": self.dataset_namespace,
            "datasetName": self.dataset_name,
            "blastRadius": self.blast_radius,
            "runUrl": f"{api_url.rstrip('/')}/api/v1/runs/{self.run_id}" if self.run_id else None,
            "incidentUrl": f"{api_url.rstrip('/')}/#incident/{self.incident_id}",
            # the board's lineage view of the incident: its failure and blast radius drawn
            "lineageUrl": f"{api_url.rstrip('/')}/#lineage/incident%3A{self.incident_id}",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            alert_id=data["alertId"],
            kind=data["kind"],
            severity=data["severity"],
            paged=data["paged"],
            run_id=data["runId"],
            namespace=data["namespace"],
            job=data["job"],
            state=data["state"],
            raised_at=datetime.fromisoformat(data["raisedAt"]),
            parent_run_id=data.get("parentRunId"),
            root_run_id=data.get("rootRunId"),
            error_message=data.get("errorMessage"),
            stack_trace=data.get("stackTrace"),
            started_at=_parse(data.get("startedAt")),
            ended_at=_parse(data.get("endedAt")),
            try_number=data.get("tryNumber"),
            detail=data.get("detail", ""),
            incident_id=data.get("incidentId") or "",
            paged_by=data.get("pagedBy"),
            dataset_namespace=data.get("datasetNamespace"),
            dataset_name=data.get("datasetName"),
            blast_radius=data.get("blastRadius"),
        )


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def alert_id(run_id: str, kind: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{run_id}/{kind}"))


def incident_of_tree(root_run_id: str) -> str:
    """The incident of a run tree's final failures: one per root run."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{root_run_id}/incident"))


def groups_by_tree(alert: Alert, rules: AlertRules) -> bool:
    """Whether ``alert`` belongs to its run tree's incident (else it is one of its own)."""
    return rules.grouping is Grouping.INCIDENT and alert.kind == Kind.FAILED


def in_incident(alert: Alert, incident_id: str, pager_id: str | None) -> Alert:
    """``alert`` as a member of an incident; ``pager_id``: the alert that paged for it (when
    it is another one, this alert joins unpaged)."""
    if pager_id is None or pager_id == alert.alert_id:
        return dataclasses.replace(alert, incident_id=incident_id)
    return dataclasses.replace(alert, incident_id=incident_id, paged=False, paged_by=pager_id)


def make_alert(state: RunState, kind: Kind, now: float, *, paged: bool, detail: str = "") -> Alert:
    return Alert(
        alert_id=alert_id(state.run_id, kind),
        kind=kind.value,
        severity=SEVERITY[kind],
        paged=paged,
        run_id=state.run_id,
        namespace=state.namespace,
        job=state.job,
        state=state.state,
        raised_at=datetime.fromtimestamp(now, UTC),
        parent_run_id=state.parent_run_id,
        root_run_id=state.root_run_id,
        error_message=state.error_message,
        stack_trace=state.stack_head,
        started_at=ticks_to_datetime(state.start_ticks),
        ended_at=ticks_to_datetime(state.end_ticks),
        try_number=state.try_number,
        detail=detail,
    )


def will_retry(state: RunState) -> bool:
    """Airflow will run this task again: the failed try was not its last."""
    return (
        state.try_number is not None
        and state.retries is not None
        and state.try_number <= state.retries
    )


def on_change(
    state: RunState, rules: AlertRules, now: float, *, again: bool = False
) -> list[Alert]:
    """Alerts a run's state raises (failure, retrying failure, recovery); those it already
    raised (``state.alerted``) only ``again`` (for the outbox, which keeps each once)."""
    kinds: list[tuple[Kind, bool, str]] = []
    if state.state in ("FAIL", "ABORT"):
        is_dag_run = state.parent_run_id is None
        if will_retry(state):
            kind = Kind.RETRYING
            paged = rules.policy is Policy.EVERY
            detail = f"try {state.try_number} of {state.retries + 1} failed; Airflow retries it"  # type: ignore[operator]
        else:
            kind = Kind.FAILED
            paged = rules.policy is not Policy.DAG or is_dag_run
            detail = f"run ended {state.state}"
        kinds.append((kind, paged, detail))
    elif state.state == "COMPLETE" and (
        Kind.STUCK in state.alerted or Kind.OVERDUE in state.alerted
    ):
        # recorded, not paged: the incident it ends resolves, and its resolve message says so
        kinds.append((Kind.RECOVERED, False, "completed after it was reported stuck or overdue"))
    return [
        make_alert(state, kind, now, paged=paged, detail=detail)
        for kind, paged, detail in kinds
        if again or kind not in state.alerted
    ]


def typical_duration_ms(durations: Iterable[int], min_samples: int) -> int | None:
    """The median of a job's recent completed durations, once there are enough of them."""
    values = list(durations)
    if len(values) < max(1, min_samples):
        return None
    return int(statistics.median(values))


def on_sweep(
    state: RunState, rules: AlertRules, now: float, typical_ms: int | None, *, again: bool = False
) -> list[Alert]:
    """Stuck / overdue alerts for a run that is still running, checked periodically (those
    already raised only ``again``)."""
    if state.state != RUNNING or (state.processing_type or "").upper() == "STREAMING":
        return []
    limits = rules.limits(state.namespace, state.job)
    if not limits.enabled:
        return []
    alerts = []
    idle = now - state.updated_at if state.updated_at is not None else 0.0
    if (again or Kind.STUCK not in state.alerted) and idle > limits.idle_s:
        detail = f"no event for {idle:.0f} s (threshold {limits.idle_s:.0f} s)"
        alerts.append(make_alert(state, Kind.STUCK, now, paged=True, detail=detail))
    if (again or Kind.OVERDUE not in state.alerted) and typical_ms and state.start_ticks:
        started_ms = state.start_ticks // 10_000
        if state.first_seen_at is not None:
            # from when this worker saw it start, if later: a backlog of old events replayed
            # (a new deployment, a consumer far behind) must not page for every run still
            # open in it; a START that arrives late delays the alert by as much
            started_ms = max(started_ms, int(state.first_seen_at * 1_000))
        running_ms = (now * 1_000) - started_ms
        if running_ms > limits.overdue_factor * typical_ms:
            detail = (
                f"running {running_ms / 1000:.0f} s, over {limits.overdue_factor:g} x the "
                f"job's typical {typical_ms / 1000:.0f} s"
            )
            alerts.append(make_alert(state, Kind.OVERDUE, now, paged=True, detail=detail))
    return alerts


def parse_overrides(raw: Mapping[str, Any], defaults: Limits) -> dict[str, Limits]:
    """``{"namespace" or "namespace/job": {"idle_s": .., "overdue_factor": .., "enabled": ..}}``"""
    out = {}
    for scope, values in raw.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"{scope!r}: expected an object of limits")
        unknown = set(values) - {"idle_s", "overdue_factor", "min_samples", "enabled"}
        if unknown:
            raise ValueError(f"{scope!r}: unknown keys {sorted(unknown)}")
        out[scope] = Limits(
            idle_s=float(values.get("idle_s", defaults.idle_s)),
            overdue_factor=float(values.get("overdue_factor", defaults.overdue_factor)),
            min_samples=int(values.get("min_samples", defaults.min_samples)),
            enabled=bool(values.get("enabled", defaults.enabled)),
        )
    return out


def alert_partition(alert: Alert, partitions: int) -> int:
    """The alerts-topic partition of an alert: the one whose owner raised it, so that its
    notify agent reads it back (a run's alerts: the run's; a dataset's: partition 0, whose
    owner judges the datasets)."""
    return 0 if alert.dataset_name else run_partition(alert.run_id, partitions)
