"""The store interface shared by the worker (writes) and the API (reads).

Every write is an idempotent upsert keyed by deterministic ids, so at-least-once delivery
(a batch written again after a crash) never produces a second row.
"""

from __future__ import annotations

import abc
import base64
import binascii
import dataclasses
import hashlib
import hmac
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..alerting import SEVERITIES, Alert
from ..datasets import DatasetIO
from ..model import (
    DatasetEvent,
    JobEvent,
    RunEvent,
    ValidEvent,
    datetime_to_ticks,
    ticks_to_datetime,
)
from ..pickling import pickled_as_arguments
from ..runstate import TERMINAL_STATES, RunState, rank


class StoreError(RuntimeError):
    """The store could not do what was asked (connection, lock, timeout): retry later."""


class StoreRefused(RuntimeError):
    """The store refused this value (too large, invalid for its schema): writing it again
    can never succeed. The caller isolates the value and accounts for it another way.

    A store that writes a call's rows independently (Cassandra) says which rows it refused
    (``rows``: positions in the call) and, for event writes, how many of the others were new
    (``new``): those others are written. Without ``rows``, nothing of the call was written."""

    def __init__(self, message: str, rows: set[int] | None = None, new: int = 0) -> None:
        super().__init__(message)
        self.rows = rows
        self.new = new


class SchemaError(RuntimeError):
    """The store's schema is missing or newer than this code: retrying will not help."""


class InvalidCursor(ValueError):
    """A paging cursor that this store did not issue for this query."""


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A row of ``events_by_run`` (Atlas's columns)."""

    event_id: uuid.UUID
    run_id: str
    job_name: str
    source: str
    event_time: datetime
    status: str | None
    event: str  # the original JSON text, verbatim
    # the text as the store keeps it, for a store that packs it (Store.pack_text), made
    # before the event reaches the store's writer; None: the store packs it itself (so do
    # NonRunEvent's)
    packed: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_valid(
        cls, valid: ValidEvent, pack_text: Callable[[str], bytes] | None = None
    ) -> StoredEvent:
        payload = valid.payload
        assert isinstance(payload, RunEvent)
        return cls(
            event_id=valid.event_id,
            run_id=payload.run.runId,
            job_name=payload.job.name,
            source=valid.producer,
            event_time=valid.event_time.at,
            status=payload.eventType.value if payload.eventType else None,
            event=valid.text,
            packed=pack_text(valid.text) if pack_text is not None else None,
        )


@pickled_as_arguments
@dataclass(frozen=True, slots=True)
class NonRunEvent:
    """A JobEvent or DatasetEvent (no run): kept in its own table, by job or dataset."""

    event_id: uuid.UUID
    kind: str  # "JOB" | "DATASET"
    namespace: str
    name: str
    source: str
    event_time: datetime
    event: str
    packed: bytes | None = field(default=None, compare=False, repr=False)  # see StoredEvent

    @classmethod
    def from_valid(
        cls, valid: ValidEvent, pack_text: Callable[[str], bytes] | None = None
    ) -> NonRunEvent:
        payload = valid.payload
        if isinstance(payload, JobEvent):
            kind, ns, name = "JOB", payload.job.namespace, payload.job.name
        else:
            assert isinstance(payload, DatasetEvent)
            kind, ns, name = "DATASET", payload.dataset.namespace, payload.dataset.name
        packed = pack_text(valid.text) if pack_text is not None else None
        at = valid.event_time.at
        return cls(valid.event_id, kind, ns, name, valid.producer, at, valid.text, packed)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    field: str | None
    received_at: datetime
    key: bytes | None
    value: bytes | None  # the first 64 KiB (dead_letters.STORED_VALUE_BYTES)
    value_bytes: int | None = None  # the whole value's length (None: rows of older versions)
    value_sha256: str | None = None  # of the whole value, hex


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[StoredEvent]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A run's status as stored and served (times as aware UTC datetimes)."""

    run_id: str
    state: str
    namespace: str
    job: str
    parent_run_id: str | None
    root_run_id: str | None
    first_event_time: datetime | None
    last_event_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    duration_ms: int | None
    event_count: int
    last_event_type: str | None
    error_message: str | None
    nominal_start_time: str | None
    processing_type: str | None
    updated_at: datetime


# run_status columns as both stores name them, in RunStatus field order.
STATUS_COLUMNS = (
    "runId, state, namespace, jobName, parentRunId, rootRunId, firstEventTime, lastEventTime, "
    "startTime, endTime, durationMs, eventCount, lastEventType, errorMessage, nominalStartTime, "
    "processingType, updatedAt"
)
_STATUS_FIELDS = tuple(f.name for f in dataclasses.fields(RunStatus))
_STATUS_VALUES = operator.attrgetter(*_STATUS_FIELDS)
_STATUS_TIMES = tuple(
    i for i, f in enumerate(dataclasses.fields(RunStatus)) if "datetime" in str(f.type)
)


# Both run once per run status written or read: converting only the time columns in place
# takes two thirds of the time of a generator over every column (2.4 against 3.6 µs a row).
def status_to_row(status: RunStatus, time: Callable[[datetime | None], Any]) -> tuple:
    """A status as a STATUS_COLUMNS row, its times converted by ``time`` for the store."""
    row = list(_STATUS_VALUES(status))
    for i in _STATUS_TIMES:
        row[i] = time(row[i])
    return tuple(row)


def status_from_row(row: Sequence[Any], time: Callable[[Any], datetime | None]) -> RunStatus:
    """A STATUS_COLUMNS row back to a status, its times converted by ``time``."""
    values = list(row)
    for i in _STATUS_TIMES:
        values[i] = time(values[i])
    return RunStatus(*values)


def status_from_state(state: RunState, updated_at: datetime) -> RunStatus:
    return RunStatus(
        run_id=state.run_id,
        state=state.state,
        namespace=state.namespace,
        job=state.job,
        parent_run_id=state.parent_run_id,
        root_run_id=state.root_run_id,
        first_event_time=ticks_to_datetime(state.first_event_ticks),
        last_event_time=ticks_to_datetime(state.last_event_ticks),
        start_time=ticks_to_datetime(state.start_ticks),
        end_time=ticks_to_datetime(state.end_ticks),
        duration_ms=state.duration_ms,
        event_count=state.event_count,
        last_event_type=state.last_event_type,
        error_message=state.error_message,
        nominal_start_time=state.nominal_start_time,
        processing_type=state.processing_type,
        updated_at=updated_at,
    )


_CURSOR_VERSION = b"\x02"
_CURSOR_CHECK_BYTES = 8


def _cursor_check(scope: str, raw: bytes) -> bytes:
    digest = hashlib.blake2b(scope.encode("utf-8", "surrogatepass"), digest_size=16)
    digest.update(b"\x00")
    digest.update(raw)
    return digest.digest()[:_CURSOR_CHECK_BYTES]


def seal_cursor(scope: str, raw: bytes) -> str:
    """An opaque, url-safe cursor: the store's position ``raw`` (a Cassandra paging state, a
    SQLite key) plus a check over the query it belongs to (``scope``), so a cursor that was
    altered, truncated or issued for another query is refused instead of misread."""
    sealed = _CURSOR_VERSION + _cursor_check(scope, raw) + raw
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def open_cursor(scope: str, text: str) -> bytes:
    """The position inside a cursor made by ``seal_cursor`` for the same scope."""
    try:
        sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor("pagingState is not a cursor issued by this API") from None
    head = 1 + _CURSOR_CHECK_BYTES
    if len(sealed) <= head or sealed[:1] != _CURSOR_VERSION:
        raise InvalidCursor("pagingState is not a cursor issued by this API")
    raw = sealed[head:]
    if not hmac.compare_digest(sealed[1:head], _cursor_check(scope, raw)):
        raise InvalidCursor("pagingState was not issued for this query")
    return raw


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


def run_time(status: RunStatus) -> datetime:
    """When a run started (its START event, else the first event seen): job history order."""
    return status.start_time or status.first_event_time or status.updated_at


def state_time(status: RunStatus) -> datetime:
    """When a run entered its current state: its end for finished runs, else its start."""
    if status.state in TERMINAL_STATES:
        return status.end_time or status.last_event_time or run_time(status)
    return run_time(status)


MAX_PAGE_SIZE = 1000


class Store(abc.ABC):
    """One interface, two implementations: SQLite (embedded) and Cassandra (production)."""

    # How the store packs an event's text (a picklable module-level function), for stores
    # that keep it packed: triage applies it where it has CPU to spare (StoredEvent.packed).
    pack_text: Callable[[str], bytes] | None = None

    def for_helper(self) -> Store | None:
        """An unopened store of the same database that a helper process may open and write
        to (picklable), or None when writes must stay in this process (the default).

        The triage helper then writes each batch's event rows itself (sink.py): they never
        cross back into the worker, whose single event-loop thread is its bottleneck.
        """
        return None

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if missing (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # ---- writes (worker) -------------------------------------------------------------
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
    async def write_run_statuses(
        self, statuses: Sequence[RunStatus], previous: Mapping[str, RunStatus] | None = None
    ) -> None:
        """Upsert run statuses (last write wins; the fold makes the last one right).

        ``previous`` holds the stored statuses these replace, as the writer read them, so a
        store with query tables keyed by state or time can remove the rows they leave behind.
        """

    @abc.abstractmethod
    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    # ---- reads (API, and the worker when it revives a run that left the live table) --
    @abc.abstractmethod
    async def get_events(self, run_id: str, page_size: int, cursor: str | None = None) -> EventPage:
        """A run's events, newest first by eventId. Raises InvalidCursor for a bad cursor."""

    @abc.abstractmethod
    async def get_event(self, run_id: str, event_id: uuid.UUID) -> StoredEvent | None: ...

    @abc.abstractmethod
    async def get_run_status(self, run_id: str) -> RunStatus | None: ...

    @abc.abstractmethod
    async def get_run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]: ...

    @abc.abstractmethod
    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None = None) -> RunPage:
        """Runs matching ``query``, newest first, at most ``limit`` per page.

        A page may hold fewer than ``limit`` runs and still have a ``next_cursor`` (a store may
        bound the work one page does); walking every page returns each run once.
        Raises InvalidCursor for a cursor not issued for this query.
        """

    @abc.abstractmethod
    async def list_children(self, run_id: str, limit: int, cursor: str | None = None) -> RunPage:
        """The runs whose parent is ``run_id`` (a DAG run's task runs), in runId order.

        Same paging contract as ``list_runs``. Raises InvalidCursor for a foreign cursor.
        """

    @abc.abstractmethod
    async def recent_event_ids(self, run_id: str, limit: int) -> list[str]:
        """The newest ``limit`` event ids of a run (to rebuild the fold's dedup list)."""

    @abc.abstractmethod
    async def count_events(self, run_id: str) -> int: ...

    @abc.abstractmethod
    async def get_non_run_events(
        self, namespace: str, name: str, limit: int
    ) -> list[NonRunEvent]: ...

    @abc.abstractmethod
    async def get_dead_letters(self, limit: int) -> list[DeadLetter]: ...

    # ---- alerts (an outbox: recorded once, published once) --------------------------
    @abc.abstractmethod
    async def record_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Keep each alert once (by ``alert_id``) and return those not yet published.

        An alert raised again returns as it was first recorded (same ``raised_at``) while it
        is unpublished, and not at all once published: the caller publishes what this
        returns, then calls ``mark_alerts_published``.
        """

    @abc.abstractmethod
    async def mark_alerts_published(self, alert_ids: Sequence[str]) -> None: ...

    @abc.abstractmethod
    async def list_alerts(
        self, query: AlertQuery, limit: int, cursor: str | None = None
    ) -> AlertPage:
        """Alerts matching ``query``, newest first.

        Same paging contract as ``list_runs``. Raises InvalidCursor for a foreign cursor.
        """

    # ---- datasets ---------------------------------------------------------------------
    @abc.abstractmethod
    async def write_dataset_io(self, rows: Sequence[DatasetIO]) -> None:
        """Record which runs (and jobs) read and wrote which datasets; idempotent."""

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

    async def counts(self) -> dict[str, int] | None:
        """Rows held, by table and runs by state, where counting is cheap (``lineage-faust
        stats``); None where it would scan a cluster."""
        return None

    @abc.abstractmethod
    async def health(self) -> None:
        """Raise StoreError unless a real round trip to the store works."""


def state_from_status(status: RunStatus, seen: list[str], event_count: int) -> RunState:
    """Rebuild a live fold state from a stored status (a run that left the live table).

    The dedup list and the count come from the stored events themselves, so an event that was
    stored before the crash or eviction is not counted twice.
    """
    end = datetime_to_ticks(status.end_time)
    last = datetime_to_ticks(status.last_event_time) or 0
    key = (rank(status.state), end if end is not None else last, "")
    return RunState(
        run_id=status.run_id,
        state=status.state,
        namespace=status.namespace,
        job=status.job,
        parent_run_id=status.parent_run_id,
        root_run_id=status.root_run_id,
        first_event_ticks=datetime_to_ticks(status.first_event_time),
        last_event_ticks=datetime_to_ticks(status.last_event_time),
        start_ticks=datetime_to_ticks(status.start_time),
        end_ticks=end,
        event_count=event_count,
        last_event_type=status.last_event_type,
        error_message=status.error_message,
        nominal_start_time=status.nominal_start_time,
        processing_type=status.processing_type,
        state_key=key,
        error_key=key if status.error_message else None,
        meta_key=key,
        finished_at=status.updated_at.timestamp() if status.state in TERMINAL_STATES else None,
        updated_at=status.updated_at.timestamp(),
        seen=seen,
    )
