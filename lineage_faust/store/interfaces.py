"""The store, as small interfaces by role: the worker's ingest writes (``EventSink``),
its run-state agent (``RunStatuses``, ``AlertOutbox``, ``IncidentLedger``), its freshness
sweep (``DatasetFreshness``), the API (``Queries``), lineage walks (``LineageReads``).

Every write is an idempotent upsert keyed by deterministic ids, so at-least-once delivery
(a batch written again after a crash) never produces a second row.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Mapping, Sequence

from lineage_faust.domain.alerting import Alert
from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.domain.freshness import Lapse, LastWrite
from lineage_faust.domain.incidents import Incident
from lineage_faust.domain.records import DeadLetter, NonRunEvent, RunStatus, StoredEvent
from lineage_faust.store.queries import (
    AlertPage,
    AlertQuery,
    DatasetLink,
    DatasetRunPage,
    EventPage,
    IncidentPage,
    IncidentQuery,
    LatestRun,
    RunPage,
    RunQuery,
)

MAX_PAGE_SIZE = 1000


class StoreLifecycle(abc.ABC):
    """Opening, closing and checking a store; where its writes may run."""

    # How the store packs an event's text (a picklable module-level function), for stores
    # that keep it packed: triage applies it where it has CPU to spare (StoredEvent.packed).
    pack_text: Callable[[str], bytes] | None = None

    def for_helper(self) -> Store | None:
        """An unopened store of the same database that a helper process may open and write
        to (picklable), or None when writes must stay in this process (the default).

        The triage helper then writes each batch's event rows itself
        (``worker/store_writes.py``): they never cross back into the worker, whose single
        event-loop thread is its bottleneck.
        """
        return None

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if missing (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def health(self) -> None:
        """Raise StoreError unless a real round trip to the store works."""

    async def counts(self) -> dict[str, int] | None:
        """Rows held, by table and runs by state, where counting is cheap (``lineage-faust
        stats``); None where it would scan a cluster."""
        return None


class EventSink(abc.ABC):
    """What ``ingest`` writes for each batch: events, dead letters, dataset reads and writes."""

    @abc.abstractmethod
    async def write_events(self, events: Sequence[StoredEvent]) -> int:
        """Write run events into ``events_by_run``; rewriting one changes nothing.

        Returns how many were not stored before (the rest are duplicates: redeliveries,
        or the same event sent twice), which the worker's accounting needs.
        """

    @abc.abstractmethod
    async def write_non_run_events(self, events: Sequence[NonRunEvent]) -> int:
        """As ``write_events``, for JobEvents and DatasetEvents; returns how many were new."""

    @abc.abstractmethod
    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    @abc.abstractmethod
    async def write_dataset_io(self, rows: Sequence[DatasetIO]) -> None:
        """Record which runs (and jobs) read and wrote which datasets; idempotent."""


class RunStatuses(abc.ABC):
    """What ``track_runs`` reads and writes: the stored status of each run (the authority; the
    live table is a cache), and what it needs to rebuild a run from the store."""

    @abc.abstractmethod
    async def write_run_statuses(
        self, statuses: Sequence[RunStatus], previous: Mapping[str, RunStatus] | None = None
    ) -> None:
        """Upsert run statuses (last write wins; the fold makes the last one right).

        ``previous`` holds the stored statuses these replace, as the writer read them, so a
        store with query tables keyed by state or time can remove the rows they leave behind.
        """

    @abc.abstractmethod
    async def get_run_status(self, run_id: str) -> RunStatus | None: ...

    @abc.abstractmethod
    async def get_run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]: ...

    @abc.abstractmethod
    async def recent_event_ids(self, run_id: str, limit: int) -> list[str]:
        """The newest ``limit`` event ids of a run (to rebuild the fold's dedup list)."""

    @abc.abstractmethod
    async def count_events(self, run_id: str) -> int: ...


class AlertOutbox(abc.ABC):
    """Alerts are recorded once, published, then marked published: one page per condition,
    across crashes and redeliveries."""

    @abc.abstractmethod
    async def record_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Keep each alert once (by ``alert_id``) and return those not yet published.

        An alert raised again returns as it was first recorded (same ``raised_at``) while it
        is unpublished, and not at all once published: the caller publishes what this
        returns, then calls ``mark_alerts_published``.
        """

    @abc.abstractmethod
    async def mark_alerts_published(self, alert_ids: Sequence[str]) -> None: ...


class IncidentLedger(abc.ABC):
    """Which alert pages for each incident: the first to claim it, whoever asks again."""

    @abc.abstractmethod
    async def claim_incidents(self, claims: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Claim each ``(incident id, alert id)``: an incident not claimed before is given to
        the alert (the first claim of an incident in ``claims`` wins); returns, per incident,
        the alert that holds it. Atomic per incident across processes."""


class IncidentBook(abc.ABC):
    """Incidents' lifecycles (``domain.incidents``): the worker opens, joins and resolves them
    as failures and recoveries arrive; the API acknowledges and resolves them by hand."""

    @abc.abstractmethod
    async def get_incidents(self, incident_ids: Sequence[str]) -> dict[str, Incident]:
        """The incidents kept under these ids (each with the ``version`` it was read at)."""

    @abc.abstractmethod
    async def incidents_of_subjects(self, subjects: Sequence[str]) -> dict[str, str]:
        """Per subject (``job:ns/name``, ``dataset:ns/name``), the incident last saved with it."""

    @abc.abstractmethod
    async def save_incident(self, incident: Incident) -> bool:
        """Write ``incident`` if the kept one is still at ``incident.version`` (0: none kept);
        then its version is one more, its subjects point at it, and this returns True. False:
        someone changed it meanwhile (read it again, apply the change again). Atomic across
        processes (SQLite: a transaction; Cassandra: a lightweight transaction)."""

    @abc.abstractmethod
    async def list_incidents(
        self, query: IncidentQuery, limit: int, cursor: str | None = None
    ) -> IncidentPage:
        """Incidents newest first by when they opened, paged by an opaque cursor."""


class DatasetFreshness(abc.ABC):
    """What the freshness sweep reads and keeps: the datasets written, the open lapses."""

    @abc.abstractmethod
    async def written_datasets(self) -> list[tuple[str, str]]:
        """``(namespace, name)`` of every dataset seen as a run's output."""

    @abc.abstractmethod
    async def open_lapses(self) -> list[Lapse]: ...

    @abc.abstractmethod
    async def open_lapse(self, lapse: Lapse) -> None:
        """Keep ``lapse`` as the dataset's open lapse (replacing any before it)."""

    @abc.abstractmethod
    async def close_lapse(self, namespace: str, name: str) -> None: ...


class Queries(abc.ABC):
    """What the API reads (it never writes): pages of events, runs, alerts and dataset links.

    Every listing is newest first and paged by an opaque cursor; a cursor not issued for the
    same query raises InvalidCursor."""

    @abc.abstractmethod
    async def get_events(self, run_id: str, page_size: int, cursor: str | None = None) -> EventPage:
        """A run's events, newest first by eventId. Raises InvalidCursor for a bad cursor."""

    @abc.abstractmethod
    async def get_event(self, run_id: str, event_id: uuid.UUID) -> StoredEvent | None: ...

    @abc.abstractmethod
    async def get_non_run_events(
        self, namespace: str, name: str, limit: int
    ) -> list[NonRunEvent]: ...

    @abc.abstractmethod
    async def get_dead_letters(self, limit: int) -> list[DeadLetter]: ...

    @abc.abstractmethod
    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None = None) -> RunPage:
        """Runs matching ``query``, newest first, at most ``limit`` per page.

        A page may hold fewer than ``limit`` runs and still have a ``next_cursor`` (a store may
        bound the work one page does); walking every page returns each run once.
        Raises InvalidCursor for a cursor not issued for this query.
        """

    @abc.abstractmethod
    async def list_children(self, run_id: str, limit: int, cursor: str | None = None) -> RunPage:
        """The runs whose parent is ``run_id`` (a DAG run's task runs), by start time (a run
        without a START by its first event), then runId.

        Same paging contract as ``list_runs``. Raises InvalidCursor for a foreign cursor.
        """

    @abc.abstractmethod
    async def list_alerts(
        self, query: AlertQuery, limit: int, cursor: str | None = None
    ) -> AlertPage:
        """Alerts matching ``query``, newest first.

        Same paging contract as ``list_runs``. Raises InvalidCursor for a foreign cursor.
        """

    @abc.abstractmethod
    async def incident_alerts(self, incident_id: str, limit: int) -> list[Alert]:
        """An incident's alerts, oldest first (the page, then what joined it)."""

    @abc.abstractmethod
    async def list_dataset_runs(
        self, namespace: str, name: str, limit: int, cursor: str | None = None
    ) -> DatasetRunPage:
        """Runs that read or wrote a dataset, newest first (one entry per run and
        direction), with their statuses. Same paging contract as ``list_runs``."""

    @abc.abstractmethod
    async def dataset_jobs(self, namespace: str, name: str) -> list[DatasetLink]:
        """Jobs seen reading (input) or writing (output) a dataset, most recent first."""

    @abc.abstractmethod
    async def job_datasets(self, namespace: str, job: str) -> list[DatasetLink]:
        """Datasets a job was seen reading or writing, most recent first."""

    @abc.abstractmethod
    async def run_datasets(self, run_id: str) -> list[DatasetIO]:
        """The datasets one run declared reading or writing."""


NodeKey = tuple[str, str]  # (namespace, name) of a job or a dataset
Link = tuple[str, str, str]  # (namespace, name, direction: the dataset's INPUT / OUTPUT)


class LineageReads(abc.ABC):
    """What a lineage walk reads of a whole level of nodes at once (the API's graph, a page's
    and an incident's blast radius): one call per level, not one per node."""

    @abc.abstractmethod
    async def links_of(
        self, jobs: Sequence[NodeKey], datasets: Sequence[NodeKey]
    ) -> tuple[dict[NodeKey, list[Link]], dict[NodeKey, list[Link]]]:
        """(each job's datasets, each dataset's jobs: ``job_datasets`` and ``dataset_jobs``
        without times or order); a node with none is left out."""

    @abc.abstractmethod
    async def latest_runs(self, jobs: Sequence[NodeKey]) -> dict[NodeKey, LatestRun]:
        """Each job's newest run (``list_runs`` by job, first row); a job with none is left out."""

    @abc.abstractmethod
    async def last_good_writes(self, datasets: Sequence[NodeKey]) -> dict[NodeKey, LastWrite]:
        """Each dataset's newest successful write among its last ``HISTORY_SCAN`` history rows
        (as ``dataset_history.last_good_write``); a dataset with none is left out."""


class Store(
    StoreLifecycle,
    EventSink,
    RunStatuses,
    AlertOutbox,
    IncidentLedger,
    IncidentBook,
    DatasetFreshness,
    Queries,
    LineageReads,
):
    """Every role in one: SQLite (embedded) and Cassandra (production) implement all of them;
    each part of the system depends on the roles it uses."""
