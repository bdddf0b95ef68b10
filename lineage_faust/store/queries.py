"""What the store is asked for, and the pages it answers with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lineage_faust.domain.alerting import SEVERITIES, Alert
from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.domain.incidents import Incident
from lineage_faust.domain.records import RunStatus, StoredEvent, run_time, state_time


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[StoredEvent]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs to list (``Store.list_runs``), newest first.

    A job's runs (``job`` set, with its ``namespace``) are its history: ordered and bounded
    (since/until) by when they started (``run_time``). Otherwise, with ``state``, by when they
    entered that state (``state_time``: "what failed in the last hour"); with neither, by start.
    """

    state: str | None = None
    namespace: str | None = None
    job: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.job is not None and self.namespace is None:
            raise ValueError("a job filter needs its namespace")

    def scope(self) -> str:
        parts = (self.state, self.namespace, self.job, self.since, self.until)
        return "runs|" + "|".join("" if p is None else str(p) for p in parts)

    def ordering_time(self, status: RunStatus) -> datetime:
        return state_time(status) if self.state and not self.job else run_time(status)

    def matches(self, status: RunStatus) -> bool:
        if self.state is not None and status.state != self.state:
            return False
        if self.namespace is not None and status.namespace != self.namespace:
            return False
        if self.job is not None and status.job != self.job:
            return False
        at = self.ordering_time(status)
        if self.since is not None and at < self.since:
            return False
        return self.until is None or at <= self.until


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunStatus]
    next_cursor: str | None


@dataclass(slots=True)
class DatasetRun:
    """A run that read or wrote a dataset, with the run's status (None: not stored yet)."""

    io: DatasetIO
    status: RunStatus | None


@dataclass(slots=True)
class DatasetRunPage:
    runs: list[DatasetRun]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class LatestRun:
    """A job's newest run as a lineage graph shows it."""

    run_id: str
    state: str
    ended: datetime | None  # when it ended (a run still going: its last event)


@dataclass(frozen=True, slots=True)
class DatasetLink:
    """A job seen reading/writing a dataset, or a dataset a job was seen reading/writing."""

    namespace: str
    name: str
    direction: str  # "input" or "output"
    last_seen: datetime


@dataclass(slots=True)
class AlertPage:
    alerts: list[Alert]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AlertQuery:
    since: datetime | None = None  # raised at or after
    min_severity: str | None = None  # "warning" means warning and critical

    @property
    def severities(self) -> tuple[str, ...]:
        if self.min_severity is None:
            return SEVERITIES
        return SEVERITIES[SEVERITIES.index(self.min_severity) :]

    def scope(self) -> str:
        """What a cursor is bound to: a cursor of another query is refused."""
        since = self.since.isoformat() if self.since else ""
        return f"alerts|{since}|{self.min_severity or ''}"


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    state: str | None = None  # open, acknowledged or resolved; None: every state
    since: datetime | None = None  # opened at or after
    namespace: str | None = None  # the page's job (or dataset) namespace
    job: str | None = None  # the page's job (or dataset) name, or any subject's job name

    def scope(self) -> str:
        """What a cursor is bound to: a cursor of another query is refused."""
        since = self.since.isoformat() if self.since else ""
        return f"incidents|{self.state or ''}|{since}|{self.namespace or ''}|{self.job or ''}"

    def matches(self, incident: Incident) -> bool:
        if self.state is not None and incident.state != self.state:
            return False
        if self.since is not None and incident.opened_at < self.since:
            return False
        if self.namespace is None and self.job is None:
            return True
        if self._names(incident.namespace, incident.name):
            return True
        # any job (or dataset) failing in it: subjects are "kind:namespace/name", and a
        # namespace may hold slashes (dbt://warehouse)
        return any(
            self._names(*ref.rsplit("/", 1))
            if self.namespace is None
            else ref.startswith(f"{self.namespace}/")
            and self._names(self.namespace, ref[len(self.namespace) + 1 :])
            for ref in (s.split(":", 1)[1] for s in incident.subjects)
        )

    def _names(self, namespace: str, name: str) -> bool:
        return (self.namespace is None or namespace == self.namespace) and (
            self.job is None or name == self.job
        )


@dataclass(slots=True)
class IncidentPage:
    incidents: list[Incident]
    next_cursor: str | None
