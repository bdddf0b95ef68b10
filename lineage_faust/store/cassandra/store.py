"""The production store: Apache Cassandra 4.x/5.x through the DataStax Python driver.

Driver use, deliberately:

* one ``Cluster``/``Session`` per process; every statement prepared once at open and marked
  idempotent (all writes are upserts/deletes by full primary key, safe to repeat);
* token-aware, DC-aware load balancing; ``LOCAL_QUORUM`` unless configured otherwise;
* no blocking call on the event loop: ``execute_async`` callbacks run on the driver's thread
  and hand their result to asyncio with ``call_soon_threadsafe``;
* bounded in-flight requests (a semaphore): a full store makes ``await`` wait, which holds
  the Faust stream back (backpressure) instead of queueing without limit;
* timeouts and unavailability are retried a few times with backoff here, then raised as
  ``StoreError`` so the worker keeps its offsets and retries the whole batch later;
* no multi-partition batches (events are 3-20 KB: even same-partition batches would cross
  Cassandra's batch size thresholds; single writes are routed to a replica directly);
* the driver's paging state is the API's opaque cursor (sealed with a check, see base).

The tables and why each partition is bounded: ``cassandra_schema``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson

from lineage_faust.domain.alerting import Alert
from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.domain.records import (
    STATUS_COLUMNS,
    DeadLetter,
    NonRunEvent,
    RunStatus,
    StoredEvent,
    run_time,
    state_time,
    status_from_row,
    status_to_row,
)
from lineage_faust.settings import CassandraOptions
from lineage_faust.store.cassandra import schema
from lineage_faust.store.cursors import open_cursor, seal_cursor
from lineage_faust.store.errors import InvalidCursor, SchemaError, StoreError, StoreRefused
from lineage_faust.store.interfaces import Store
from lineage_faust.store.queries import (
    AlertPage,
    AlertQuery,
    DatasetLink,
    DatasetRun,
    DatasetRunPage,
    EventPage,
    RunPage,
    RunQuery,
)

log = logging.getLogger(__name__)

ANY_STATE = "*"  # runs_by_state rows listing every run by its start time
_RETRIES = 3
_FIRST_BACKOFF_S = 0.1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_PAST = datetime(1900, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_BUCKET_CACHE_MAX = 100_000
# rows of one partition per UNLOGGED batch, at most (events are a few KB: a batch stays far
# below Cassandra's largest mutation, half a commit log segment, 16 MiB by default)
_BATCH_ROWS = 100
_STATUSES_PER_READ = 50  # run ids per IN read of run_status
_RUNS_PER_READ = 20  # runs per read of which events are stored (runs x their event ids)
# Batches spanning partitions (small rows of one replica set): Cassandra warns past 10
# partitions and past 5 KiB (cassandra.yaml); stay under both.
_PARTITIONS_PER_BATCH = 10
_BATCH_BYTES = 2 * 1024  # of values: Cassandra's size of the mutation is about 1.5 x (seen)
_SMALL_ROW_BYTES = 1024


@dataclass(slots=True)
class _Write:
    """A statement of a bulk write, the positions of the rows it carries in the call, and
    for a batch its rows (to write them one by one when Cassandra refuses the batch)."""

    name: str
    statement: Any
    positions: list[int]
    rows: list[tuple[tuple, list[int]]] | None = None
    error: BaseException | None = None
    row: tuple = ()  # a single row's (name, *values)


# ---- time buckets --------------------------------------------------------------------------
def hour_bucket(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def day_bucket(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def month_bucket(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _ms(at: datetime) -> datetime:
    """Cassandra timestamps hold milliseconds: compare and key at that precision."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _utc(value: datetime | None) -> datetime | None:
    """The driver returns naive UTC datetimes."""
    return None if value is None else value.replace(tzinfo=UTC)


def _millis(at: datetime) -> int:
    return int((at - _EPOCH) / timedelta(milliseconds=1))


def _from_millis(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


Position = tuple[datetime, bytes | None]  # (bucket, driver paging state inside it)


async def walk_buckets(
    buckets: list[datetime],
    page: Callable[[datetime, int, bytes | None], Awaitable[tuple[list, bytes | None]]],
    accept: Callable[[list], Awaitable[list]],
    limit: int,
    position: Position | None,
    max_scan: int,
) -> tuple[list, Position | None]:
    """Collect up to ``limit`` accepted rows from time buckets, newest bucket first.

    Each request asks for at most the rows still needed, so a page never overshoots and
    the driver's paging state after it is an exact resume point. At most ``max_scan``
    rows are read per call; the returned position resumes the walk.
    """
    if position is not None:
        buckets = [b for b in buckets if b <= position[0]]
    results: list = []
    scanned = 0
    for i, bucket in enumerate(buckets):
        state = position[1] if position is not None and bucket == position[0] else None
        while True:
            if len(results) >= limit or scanned >= max_scan:
                return results, (bucket, state)
            rows, state = await page(bucket, limit - len(results), state)
            scanned += len(rows)
            results.extend(await accept(rows))
            if state is None:
                break
        if len(results) >= limit and i + 1 < len(buckets):
            return results, (buckets[i + 1], None)
    return results, None


# ---- statements ----------------------------------------------------------------------------
_EVENT_COLUMNS = "eventId, runID, jobName, source, eventTime, status, event"
_NON_RUN_COLUMNS = "eventId, kind, namespace, name, source, eventTime, event"
_DATASET_IO_COLUMNS = (
    "dsNamespace, dsName, direction, runId, jobNamespace, jobName, eventTime, rowCount, sizeBytes"
)
_DEAD_LETTER_COLUMNS = (
    "sourceTopic, sourcePartition, sourceOffset, reason, detail, fieldPath, receivedAt, "
    "messageKey, messageValue, valueBytes, valueSha256"
)


def _statements(ks: str) -> dict[str, str]:
    status_marks = ", ".join("?" * len(STATUS_COLUMNS.split(", ")))
    return {
        "insert_event": (
            f"INSERT INTO {ks}.events_by_run ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_events": f"SELECT {_EVENT_COLUMNS} FROM {ks}.events_by_run WHERE runID = ?",
        "select_event": (
            f"SELECT {_EVENT_COLUMNS} FROM {ks}.events_by_run WHERE runID = ? AND eventId = ?"
        ),
        "select_event_ids": f"SELECT eventId FROM {ks}.events_by_run WHERE runID = ? LIMIT ?",
        "select_stored_event_pairs": (
            f"SELECT runID, eventId FROM {ks}.events_by_run WHERE runID IN ? AND eventId IN ?"
        ),
        "count_events": f"SELECT count(*) FROM {ks}.events_by_run WHERE runID = ?",
        "insert_status": f"INSERT INTO {ks}.run_status ({STATUS_COLUMNS}) VALUES ({status_marks})",
        "select_status": f"SELECT {STATUS_COLUMNS} FROM {ks}.run_status WHERE runId = ?",
        "select_statuses": f"SELECT {STATUS_COLUMNS} FROM {ks}.run_status WHERE runId IN ?",
        "insert_state_index": (
            f"INSERT INTO {ks}.runs_by_state (state, bucket, sortTime, runId) VALUES (?, ?, ?, ?)"
        ),
        "delete_state_index": (
            f"DELETE FROM {ks}.runs_by_state "
            "WHERE state = ? AND bucket = ? AND sortTime = ? AND runId = ?"
        ),
        "select_state_index": (
            f"SELECT sortTime, runId FROM {ks}.runs_by_state "
            "WHERE state = ? AND bucket = ? AND sortTime >= ? AND sortTime <= ?"
        ),
        "insert_job_index": (
            f"INSERT INTO {ks}.runs_by_job (namespace, jobName, bucket, sortTime, runId) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        "delete_job_index": (
            f"DELETE FROM {ks}.runs_by_job WHERE namespace = ? AND jobName = ? AND bucket = ? "
            "AND sortTime = ? AND runId = ?"
        ),
        "select_job_index": (
            f"SELECT sortTime, runId FROM {ks}.runs_by_job WHERE namespace = ? AND jobName = ? "
            "AND bucket = ? AND sortTime >= ? AND sortTime <= ?"
        ),
        "insert_parent_index": (
            f"INSERT INTO {ks}.runs_by_parent (parentRunId, runId) VALUES (?, ?)"
        ),
        "delete_parent_index": (
            f"DELETE FROM {ks}.runs_by_parent WHERE parentRunId = ? AND runId = ?"
        ),
        "select_parent_index": f"SELECT runId FROM {ks}.runs_by_parent WHERE parentRunId = ?",
        "insert_bucket": f"INSERT INTO {ks}.buckets (scope, name, bucket) VALUES (?, ?, ?)",
        "select_buckets": (
            f"SELECT bucket FROM {ks}.buckets WHERE scope = ? AND name = ? "
            "AND bucket >= ? AND bucket <= ?"
        ),
        "insert_non_run": (
            f"INSERT INTO {ks}.non_run_events (namespace, name, bucket, eventId, kind, source, "
            "eventTime, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_stored_non_run_ids": (
            f"SELECT eventId FROM {ks}.non_run_events "
            "WHERE namespace = ? AND name = ? AND bucket = ? AND eventId IN ?"
        ),
        "select_non_run": (
            f"SELECT {_NON_RUN_COLUMNS} FROM {ks}.non_run_events "
            "WHERE namespace = ? AND name = ? AND bucket = ? LIMIT ?"
        ),
        "insert_dead_letter": (
            f"INSERT INTO {ks}.dead_letters (bucket, {_DEAD_LETTER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_dead_letters": (
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM {ks}.dead_letters WHERE bucket = ? LIMIT ?"
        ),
        "insert_alert": (
            f"INSERT INTO {ks}.alerts (alertId, raisedAt, severity, alert, published) "
            "VALUES (?, ?, ?, ?, false) IF NOT EXISTS"
        ),
        "select_alert": f"SELECT alert, published FROM {ks}.alerts WHERE alertId = ?",
        # a plain upsert, not a lightweight transaction: an alert is marked only after it was
        # recorded (and a Paxos round per alert was a good part of the node's work)
        "mark_alert_published": f"UPDATE {ks}.alerts SET published = true WHERE alertId = ?",
        "insert_alert_by_day": (
            f"INSERT INTO {ks}.alerts_by_day (bucket, raisedAt, alertId, severity, alert) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        "select_alerts_by_day": (
            f"SELECT raisedAt, alertId, severity, alert FROM {ks}.alerts_by_day "
            "WHERE bucket = ? AND raisedAt >= ?"
        ),
        "insert_dataset_run": (
            f"INSERT INTO {ks}.dataset_runs (dsNamespace, dsName, bucket, runId, direction, "
            "jobNamespace, jobName, eventTime, rowCount, sizeBytes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_dataset_runs": (
            f"SELECT {_DATASET_IO_COLUMNS} FROM {ks}.dataset_runs "
            "WHERE dsNamespace = ? AND dsName = ? AND bucket = ?"
        ),
        "insert_dataset_job": (
            f"INSERT INTO {ks}.dataset_jobs (dsNamespace, dsName, direction, jobNamespace, "
            "jobName, lastSeen) VALUES (?, ?, ?, ?, ?, ?)"
        ),
        "select_dataset_jobs": (
            f"SELECT jobNamespace, jobName, direction, lastSeen FROM {ks}.dataset_jobs "
            "WHERE dsNamespace = ? AND dsName = ?"
        ),
        "insert_job_dataset": (
            f"INSERT INTO {ks}.job_datasets (jobNamespace, jobName, direction, dsNamespace, "
            "dsName, lastSeen) VALUES (?, ?, ?, ?, ?, ?)"
        ),
        "select_job_datasets": (
            f"SELECT dsNamespace, dsName, direction, lastSeen FROM {ks}.job_datasets "
            "WHERE jobNamespace = ? AND jobName = ?"
        ),
        "insert_dataset_of_run": (
            f"INSERT INTO {ks}.datasets_by_run (runId, direction, dsNamespace, dsName, "
            "jobNamespace, jobName, eventTime, rowCount, sizeBytes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        "select_datasets_of_run": (
            f"SELECT {_DATASET_IO_COLUMNS} FROM {ks}.datasets_by_run WHERE runId = ?"
        ),
        "select_meta": f"SELECT value FROM {ks}.schema_meta WHERE name = ?",
        "insert_meta": f"INSERT INTO {ks}.schema_meta (name, value) VALUES (?, ?)",
    }


def _event_row(row: tuple) -> StoredEvent:
    event_id, run_id, job_name, source, event_time, status, event = row
    return StoredEvent(event_id, run_id, job_name, source, _utc(event_time), status, event)


def _status_row(row: tuple) -> RunStatus:
    return status_from_row(row, _utc)


@dataclass(frozen=True, slots=True)
class _IndexKeys:
    """Where a status is listed: its state row, its every-run row and its job row."""

    state: tuple[str, datetime, datetime]  # (state, hour bucket, state time)
    every: tuple[str, datetime, datetime]  # ("*", hour bucket, run time)
    job: tuple[str, str, datetime, datetime]  # (namespace, job, month bucket, run time)

    @classmethod
    def of(cls, s: RunStatus) -> _IndexKeys:
        entered, started = _ms(state_time(s)), _ms(run_time(s))
        return cls(
            (s.state, hour_bucket(entered), entered),
            (ANY_STATE, hour_bucket(started), started),
            (s.namespace, s.job, month_bucket(started), started),
        )


class _OneLineErrors(logging.Filter):
    """The driver logs every failed connection attempt with a traceback; during an outage
    that buries the worker's own log. Keep the error, drop the traceback (unless DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not logging.getLogger().isEnabledFor(logging.DEBUG):
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


for _name in ("cassandra.cluster", "cassandra.pool", "cassandra.connection", "cassandra.io"):
    logging.getLogger(_name).addFilter(_OneLineErrors())


class CassandraStore(Store):
    def __init__(self, options: CassandraOptions, *, retention_s: int | None = None) -> None:
        self.options = options
        self.retention_s = retention_s
        self._cluster: Any = None
        self._session: Any = None
        self._prepared: dict[str, Any] = {}
        self._in_flight = asyncio.Semaphore(options.max_in_flight)
        self._known_buckets: set[tuple[str, str, datetime]] = set()
        self._errors: tuple[type[BaseException], ...] = ()
        self._refusals: tuple[type[BaseException], ...] = ()
        self._accounting = asyncio.Lock()  # write_events' read-then-write, one call at a time

    def __repr__(self) -> str:
        return f"CassandraStore({','.join(self.options.hosts)}/{self.options.keyspace})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled unopened: a session and its threads belong to the process that opens it
        return (partial(CassandraStore, self.options, retention_s=self.retention_s), ())

    def for_helper(self) -> CassandraStore:
        # Cassandra takes writes from any number of processes: the triage helper writes each
        # batch's events, dead letters and dataset links itself, on a session of its own
        return CassandraStore(self.options, retention_s=self.retention_s)

    # ---- connection and schema ----------------------------------------------------------
    def drop_keyspace(self) -> None:
        """Drop this store's keyspace and everything in it (tests and benchmarks: a fresh
        keyspace each). Blocking; on a connection of its own."""
        cluster = self._make_cluster()
        try:
            cluster.connect().execute(
                f"DROP KEYSPACE IF EXISTS {self.options.keyspace}", timeout=120
            )
        finally:
            cluster.shutdown()

    def _make_cluster(self) -> Any:
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import (
            DCAwareRoundRobinPolicy,
            ExponentialReconnectionPolicy,
            RetryPolicy,
            TokenAwarePolicy,
        )
        from cassandra.query import tuple_factory

        o = self.options
        local = DCAwareRoundRobinPolicy(local_dc=o.local_dc or "")  # "" = DC of first contact
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(local),
            retry_policy=RetryPolicy(),
            consistency_level=ConsistencyLevel.name_to_value[o.consistency],
            serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
            request_timeout=o.request_timeout_s,
            row_factory=tuple_factory,
        )
        ssl_context = None
        if o.tls:
            ssl_context = ssl.create_default_context(cafile=o.tls_ca_file)
            if o.tls_ca_file is None:  # encrypted, server certificate not verified
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            else:  # chain verified; contact points are often IPs, so no hostname check
                ssl_context.check_hostname = False
        auth = PlainTextAuthProvider(o.username, o.password or "") if o.username else None
        return Cluster(
            contact_points=list(o.hosts),
            port=o.port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            ssl_context=ssl_context,
            reconnection_policy=ExponentialReconnectionPolicy(1.0, 30.0),
            connect_timeout=5,
            application_name="lineage-faust",
            protocol_version=o.protocol_version,
        )

    async def open(self) -> None:
        if self._session is not None:
            return
        from cassandra import (
            DriverException,
            InvalidRequest,
            OperationTimedOut,
            RequestExecutionException,
        )
        from cassandra.cluster import NoHostAvailable
        from cassandra.connection import ConnectionException

        self._refusals = (InvalidRequest,)  # e.g. "Rejected an oversized mutation"

        # Worth retrying: the cluster is slow, overloaded or (partly) unreachable.
        self._errors = (
            RequestExecutionException,
            OperationTimedOut,
            NoHostAvailable,
            ConnectionException,
            OSError,
        )
        connect_errors = (*self._errors, DriverException)
        cluster = self._make_cluster()
        try:
            self._session = await asyncio.to_thread(cluster.connect)
        except connect_errors as exc:
            cluster.shutdown()
            raise StoreError(f"cassandra: cannot connect to {self!r}: {exc}") from exc
        self._cluster = cluster
        try:
            await asyncio.to_thread(self._ensure_schema)
            await asyncio.to_thread(self._prepare_all)
        except connect_errors as exc:
            await self.close()
            raise StoreError(f"cassandra: {exc}") from exc
        except BaseException:
            await self.close()
            raise
        log.info(
            "cassandra store: keyspace %s, consistency %s, retention %s",
            self.options.keyspace,
            self.options.consistency,
            f"{self.retention_s}s" if self.retention_s else "none",
        )

    def _existing_tables(self) -> dict[str, Any]:
        keyspace = self._cluster.metadata.keyspaces.get(self.options.keyspace)
        return dict(keyspace.tables) if keyspace is not None else {}

    def _ensure_schema(self) -> None:
        """Create what is missing (if allowed), align TTLs, check the schema version.

        Runs on a thread (blocking driver calls), once per process start. Existing tables
        are left alone: concurrent CREATEs from many workers are what a one-shot init job
        (``lineage-faust init-store``) is for.
        """
        o, session = self.options, self._session
        existing = self._existing_tables()
        missing = [name for name in schema.TABLES if name.lower() not in existing]
        if missing:
            if not o.create_schema:
                raise SchemaError(
                    f"keyspace {o.keyspace} lacks tables {', '.join(missing)}; "
                    "run `lineage-faust init-store` (or set LINEAGE_CASSANDRA_CREATE_SCHEMA=1)"
                )
            session.execute(schema.keyspace_cql(o))
            creates = schema.table_cql(o, self.retention_s)
            for name in missing:
                log.info("cassandra: creating table %s.%s", o.keyspace, name)
                session.execute(creates[name])
            self._cluster.refresh_schema_metadata()
            existing = self._existing_tables()
        for name, columns in schema.ADDED_COLUMNS.items():
            table = existing.get(name.lower())
            for column, kind in columns:
                if table is not None and column.lower() not in table.columns:
                    if not o.create_schema:
                        raise SchemaError(
                            f"{o.keyspace}.{name} lacks column {column}; "
                            "run `lineage-faust init-store`"
                        )
                    log.info("cassandra: adding column %s.%s", name, column)
                    session.execute(f"ALTER TABLE {o.keyspace}.{name} ADD {column} {kind}")
        for name in schema.DATA_TABLES:
            table = existing.get(name.lower())
            current = table.options.get("default_time_to_live", 0) if table is not None else 0
            if int(current or 0) != (self.retention_s or 0) and o.create_schema:
                log.info("cassandra: %s TTL %s -> %s s", name, current, self.retention_s or 0)
                session.execute(schema.retention_cql(o, name, self.retention_s))
        ks = o.keyspace
        rows = list(
            session.execute(
                f"SELECT value FROM {ks}.schema_meta WHERE name = %s", ("schema_version",)
            )
        )
        found = int(rows[0][0]) if rows else None
        if found is not None and found > schema.SCHEMA_VERSION:
            raise SchemaError(
                f"keyspace {ks} has schema version {found}, newer than this code "
                f"({schema.SCHEMA_VERSION}); upgrade lineage-faust"
            )
        if found != schema.SCHEMA_VERSION:
            session.execute(
                f"INSERT INTO {ks}.schema_meta (name, value) VALUES (%s, %s)",
                ("schema_version", str(schema.SCHEMA_VERSION)),
            )

    def _prepare_all(self) -> None:
        for name, cql in _statements(self.options.keyspace).items():
            prepared = self._session.prepare(cql)
            prepared.is_idempotent = True
            self._prepared[name] = prepared

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        self._prepared = {}
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    # ---- execution ----------------------------------------------------------------------
    def _submit(self, statement: Any, paging_state: bytes | None) -> asyncio.Future:
        from cassandra.cluster import ResultSet

        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        response = self._session.execute_async(statement, paging_state=paging_state)

        def settle(outcome: Any, failed: bool) -> None:
            if future.done():  # the awaiting task was cancelled
                return
            if failed:
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        def on_rows(rows: list | None) -> None:  # driver thread; None for writes
            outcome = (rows or [], ResultSet(response, rows).paging_state)
            loop.call_soon_threadsafe(settle, outcome, False)

        def on_error(exc: BaseException) -> None:  # driver thread
            loop.call_soon_threadsafe(settle, exc, True)

        response.add_callbacks(on_rows, on_error)
        return future

    def _bind(self, name: str, values: Sequence[Any], fetch_size: int | None = None) -> Any:
        if self._session is None:
            raise StoreError("store is not open")
        bound = self._prepared[name].bind(values)
        if fetch_size is not None:
            bound.fetch_size = fetch_size
        return bound

    async def _execute(
        self,
        name: str,
        values: Sequence[Any],
        *,
        fetch_size: int | None = None,
        paging_state: bytes | None = None,
    ) -> tuple[list[tuple], bytes | None]:
        """One statement, with bounded concurrency and a few retries with backoff."""
        return await self._run(name, self._bind(name, values, fetch_size), paging_state)

    async def _run(
        self, name: str, statement: Any, paging_state: bytes | None = None
    ) -> tuple[list[tuple], bytes | None]:
        bound = statement
        delay = _FIRST_BACKOFF_S
        async with self._in_flight:
            for attempt in range(1, _RETRIES + 1):
                try:
                    return await self._submit(bound, paging_state)
                except self._errors as exc:
                    if attempt == _RETRIES:
                        raise StoreError(f"cassandra {name}: {exc}") from exc
                    log.debug("cassandra %s failed (%s); retry in %.1fs", name, exc, delay)
                    await asyncio.sleep(delay)
                    delay *= 2
                except Exception as exc:  # refused (invalid, unauthorized): retrying won't help
                    if paging_state is not None:
                        raise InvalidCursor("pagingState was refused by the store") from exc
                    writing = not name.startswith(("select", "count"))
                    if writing and isinstance(exc, self._refusals):  # this value, for good
                        raise StoreRefused(f"cassandra refused {name}: {exc}") from exc
                    # not authorised, schema changed under us: an operator can mend it
                    raise StoreError(f"cassandra refused {name}: {exc}") from exc
        raise AssertionError("unreachable")

    # ---- writes -------------------------------------------------------------------------
    async def _write_by_partition(
        self, writes: Sequence[tuple[str, Hashable, Sequence[Any]]]
    ) -> None:
        """Writes given as (statement name, partition key, values): the rows of one partition
        go to Cassandra as one UNLOGGED batch, which is one mutation (applied atomically, no
        batchlog, and no batch size warning: that is for batches spanning partitions).
        py-spy put the worker's time on the Cassandra path mostly in per-statement driver and
        asyncio overhead; a run-status group's index rows share few partitions.

        Rows Cassandra refuses for good (an oversized mutation) are found by writing the
        rows of a refused batch one by one; every other row is written, and ``StoreRefused``
        names the refused ones (positions in ``writes``)."""
        by_partition: dict[Hashable, dict[tuple, list[int]]] = {}
        for position, (name, key, values) in enumerate(writes):
            # the same row written twice in a call: once
            by_partition.setdefault(key, {}).setdefault((name, *values), []).append(position)
        statements: list[_Write] = []
        alone: list[_Write] = []  # the only row of its partition
        for rows in by_partition.values():
            items = list(rows.items())
            for start in range(0, len(items), _BATCH_ROWS):
                chunk = items[start : start + _BATCH_ROWS]
                if len(chunk) == 1:
                    (name, *values), positions = chunk[0]
                    row = (name, *values)
                    alone.append(_Write(name, self._bind(name, values), positions, row=row))
                    continue
                batch = self._new_batch()
                for (name, *values), _ in chunk:
                    batch.add(self._bind(name, values))
                covered = [p for _, positions in chunk for p in positions]
                statements.append(_Write(f"batch of {chunk[0][0][0]}", batch, covered, chunk))
        statements += self._small_batches(alone)
        refused = await self._run_all(statements)
        if not refused:
            return
        # isolate: each row of a refused batch alone
        singles = [
            _Write(name, self._bind(name, values), positions)
            for write in refused
            for (name, *values), positions in (write.rows or [])
        ]
        refused = [w for w in refused if not w.rows] + await self._run_all(singles)
        if refused:
            positions = {p for w in refused for p in w.positions}
            raise StoreRefused(
                f"cassandra refused {refused[0].name}: {refused[0].error}", positions
            )

    async def _write_all(self, writes: Sequence[tuple[str, Hashable, Sequence[Any]]]) -> None:
        """``_write_by_partition`` for calls whose rows are not the caller's one for one (they
        carry bucket rows too): a refusal names no rows, and the caller writes its rows one
        by one to find the refused one (every write here is idempotent)."""
        try:
            await self._write_by_partition(writes)
        except StoreRefused as exc:
            raise StoreRefused(str(exc)) from exc

    @staticmethod
    def _new_batch() -> Any:
        from cassandra.query import BatchStatement, BatchType

        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.is_idempotent = True  # every row is an upsert or delete by full key
        return batch

    def _small_batches(self, alone: list[_Write]) -> list[_Write]:
        """Small rows of different partitions owned by the same replicas (run statuses,
        index and bucket rows: a few hundred bytes each) go in UNLOGGED batches that stay
        under Cassandra's warnings for batches spanning partitions: at most
        ``unlogged_batch_across_partitions_warn_threshold`` (10) partitions and
        ``batch_size_warn_threshold`` (5 KiB). Sent token-aware, to one of those replicas,
        a batch is a tenth of the statements for the driver and the node to handle."""
        metadata = self._cluster.metadata
        keyspace = self.options.keyspace
        statements: list[_Write] = []
        open_batches: dict[tuple, tuple[_Write, int]] = {}  # replicas -> (batch, its bytes)
        for write in alone:
            bound = write.statement
            size = sum(len(v) for v in bound.values if isinstance(v, bytes))
            if size > _SMALL_ROW_BYTES:
                statements.append(write)
                continue
            replicas = tuple(sorted(str(h.endpoint) for h in metadata.get_replicas(
                keyspace, bound.routing_key)))  # fmt: skip
            current, used = open_batches.get(replicas, (None, 0))
            if (
                current is None
                or len(current.statement) >= _PARTITIONS_PER_BATCH
                or used + size > _BATCH_BYTES
            ):
                current = _Write(f"batch of rows like {write.name}", self._new_batch(), [], [])
                statements.append(current)
                used = 0
            current.statement.add(bound)
            current.positions.extend(write.positions)
            assert current.rows is not None
            current.rows.append((write.row, write.positions))
            open_batches[replicas] = (current, used + size)
        return statements

    async def _run_all(self, statements: list[_Write]) -> list[_Write]:
        """Many writes at once through the driver's own concurrent executor, in a thread:
        no asyncio future, task or loop wake-up per statement. Failures worth retrying are
        retried (those statements only), as ``_run`` does; the statements refused for good
        are returned (their ``error`` set); any other failure raises ``StoreError``."""
        from cassandra.concurrent import execute_concurrent

        if self._session is None:
            raise StoreError("store is not open")
        pending, refused = statements, []
        delay = _FIRST_BACKOFF_S
        for attempt in range(1, _RETRIES + 1):
            if not pending:
                return refused
            results = await asyncio.to_thread(
                execute_concurrent,
                self._session,
                [(w.statement, None) for w in pending],
                concurrency=self.options.max_in_flight,
                raise_on_first_error=False,
            )
            failed = []
            for write, (ok, result) in zip(pending, results, strict=True):
                if ok:
                    continue
                if isinstance(result, self._errors):
                    failed.append(write)
                elif isinstance(result, self._refusals):  # this value, for good
                    write.error = result
                    refused.append(write)
                else:
                    raise StoreError(f"cassandra refused {write.name}: {result}") from result
            pending = failed
            if pending and attempt < _RETRIES:
                log.debug("cassandra: %d writes failed; retry in %.1fs", len(pending), delay)
                await asyncio.sleep(delay)
                delay *= 2
        if pending:
            raise StoreError(f"cassandra {pending[0].name}: {len(pending)} writes failed")
        return refused

    def _note_bucket(
        self, scope: str, name: str, bucket: datetime, writes: list, noted: list
    ) -> None:
        """Add the bucket row's write to ``writes`` unless it was written before (its key to
        ``noted``: known once the writes succeeded, see ``_remember_buckets``)."""
        key = (scope, name, bucket)
        if key not in self._known_buckets:
            writes.append(("insert_bucket", ("bucket", scope, name), key))
            noted.append(key)

    def _remember_buckets(self, noted: list[tuple[str, str, datetime]]) -> None:
        if len(self._known_buckets) + len(noted) >= _BUCKET_CACHE_MAX:
            self._known_buckets.clear()
        self._known_buckets.update(noted)

    async def _stored_events(self, by_run: dict[tuple, list[uuid.UUID]]) -> set[tuple]:
        """Which of these events are stored already, as (run id, event id): a read per ~20
        runs, each naming its runs and their event ids (an event id belongs to one run, so
        the pairs found are the stored events). One read per run was half the statements
        writing a batch, and a statement costs the Python driver 130-170 µs of CPU here."""
        wanted = {(run_id, event_id) for (run_id,), ids in by_run.items() for event_id in ids}
        runs = [run_id for (run_id,) in by_run]
        reads = []
        for start in range(0, len(runs), _RUNS_PER_READ):
            chunk = runs[start : start + _RUNS_PER_READ]
            ids = list({event_id for run_id in chunk for event_id in by_run[(run_id,)]})
            reads.append(self._execute("select_stored_event_pairs", (chunk, ids)))
        found = await asyncio.gather(*reads)
        return {(r, e) for rows, _ in found for r, e in rows} & wanted

    async def _stored_ids(self, name: str, groups: dict[tuple, list[uuid.UUID]]) -> set[tuple]:
        """Which of these ids are stored already, as (*group key, id): a read per group."""
        keys = list(groups)
        found = await asyncio.gather(
            *(self._execute(name, (*key, list(dict.fromkeys(groups[key])))) for key in keys)
        )
        return {(*key, row[0]) for key, (rows, _) in zip(keys, found, strict=True) for row in rows}

    @staticmethod
    def _new_count(
        written: set[tuple], stored: set[tuple], keys: list[tuple], exc: StoreRefused | None
    ) -> int:
        refused = {keys[p] for p in (exc.rows or ())} if exc is not None else set()
        return len(written - stored - refused)

    async def write_events(self, events: Sequence[StoredEvent]) -> int:
        if not events:
            return 0
        by_run: dict[tuple, list[uuid.UUID]] = {}
        for e in events:
            by_run.setdefault((e.run_id,), []).append(e.event_id)
        keys = [(e.run_id, e.event_id) for e in events]
        writes = [
            (
                "insert_event",
                e.run_id,
                (e.event_id, e.run_id, e.job_name, e.source, e.event_time, e.status, e.event),
            )
            for e in events
        ]
        # Writes are upserts: what was there already is read first (for the accounting;
        # a repeat within the batch counts as a duplicate too). One call reads and writes at
        # a time: two calls with the same event, overlapping, would both count it as new.
        async with self._accounting:
            stored = await self._stored_events(by_run)
            try:
                await self._write_by_partition(writes)
            except StoreRefused as exc:  # the others were written: which of them were new
                new = self._new_count(set(keys), stored, keys, exc)
                raise StoreRefused(str(exc), exc.rows, new) from exc
        return self._new_count(set(keys), stored, keys, None)

    async def write_non_run_events(self, events: Sequence[NonRunEvent]) -> int:
        if not events:
            return 0
        groups: dict[tuple, list[uuid.UUID]] = {}
        noted: list = []
        writes: list[tuple[str, Hashable, Sequence[Any]]] = []
        keys = []
        for e in events:
            bucket = month_bucket(e.event_time)
            key = (e.namespace, e.name, bucket)
            groups.setdefault(key, []).append(e.event_id)
            keys.append((*key, e.event_id))
            values = (*key, e.event_id, e.kind, e.source, e.event_time, e.event)
            writes.append(("insert_non_run", key, values))
        for key in groups:  # after the events: their positions are those of ``events``
            self._note_bucket("non_run", f"{key[0]}\n{key[1]}", key[2], writes, noted)
        async with self._accounting:  # as write_events
            stored = await self._stored_ids("select_stored_non_run_ids", groups)
            try:
                await self._write_by_partition(writes)
            except StoreRefused as exc:
                rows = {p for p in exc.rows or () if p < len(events)}
                new = self._new_count(set(keys), stored, keys, StoreRefused("", rows))
                raise StoreRefused(str(exc), rows, new) from exc
        self._remember_buckets(noted)
        return self._new_count(set(keys), stored, keys, None)

    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        noted: list = []
        writes: list[tuple[str, Hashable, Sequence[Any]]] = []
        for d in letters:
            bucket = day_bucket(d.received_at)
            self._note_bucket("dead_letters", "", bucket, writes, noted)
            values = (
                bucket,
                d.topic,
                d.partition,
                d.offset,
                d.reason,
                d.detail,
                d.field,
                _ms(d.received_at),
                d.key,
                d.value,
                d.value_bytes,
                d.value_sha256,
            )
            writes.append(("insert_dead_letter", bucket, values))
        await self._write_all(writes)
        self._remember_buckets(noted)

    async def write_run_statuses(
        self, statuses: Sequence[RunStatus], previous: Mapping[str, RunStatus] | None = None
    ) -> None:
        previous = previous or {}
        # The status rows first: a listing verifies index rows against them.
        await self._write_all(
            [("insert_status", s.run_id, status_to_row(s, lambda at: at)) for s in statuses]
        )
        noted: list = []
        writes: list[tuple[str, Hashable, Sequence[Any]]] = []
        for status in statuses:
            self._index_writes(status, previous.get(status.run_id), writes, noted)
        await self._write_all(writes)
        self._remember_buckets(noted)

    def _index_writes(
        self,
        status: RunStatus,
        before: RunStatus | None,
        writes: list[tuple[str, Hashable, Sequence[Any]]],
        noted: list,
    ) -> None:
        """The index rows to write and delete for ``status`` (``before``: as stored)."""
        new = _IndexKeys.of(status)
        old = _IndexKeys.of(before) if before is not None else None
        run_id = status.run_id
        # Rows keyed as before are rewritten only to refresh their TTL.
        for current, stale, write, delete, scope, bucket_name, key_size in (
            (new.state, old and old.state, "insert_state_index", "delete_state_index",
             "state", new.state[0], 2),
            (new.every, old and old.every, "insert_state_index", "delete_state_index",
             "state", ANY_STATE, 2),
            (new.job, old and old.job, "insert_job_index", "delete_job_index",
             "job", f"{status.namespace}\n{status.job}", 3),
        ):  # fmt: skip
            if stale != current or self.retention_s:
                self._note_bucket(scope, bucket_name, current[-2], writes, noted)
                writes.append((write, (write, *current[:key_size]), (*current, run_id)))
            if stale is not None and stale != current:
                writes.append((delete, (write, *stale[:key_size]), (*stale, run_id)))
        parent, old_parent = status.parent_run_id, before.parent_run_id if before else None
        if parent is not None and (parent != old_parent or self.retention_s):
            writes.append(("insert_parent_index", ("parent", parent), (parent, run_id)))
        if old_parent is not None and old_parent != parent:
            writes.append(("delete_parent_index", ("parent", old_parent), (old_parent, run_id)))

    # ---- reads --------------------------------------------------------------------------
    async def get_events(self, run_id: str, page_size: int, cursor: str | None = None) -> EventPage:
        scope = f"events|{run_id}"
        state = open_cursor(scope, cursor) if cursor else None
        rows, next_state = await self._execute(
            "select_events", (run_id,), fetch_size=page_size, paging_state=state
        )
        if next_state is not None and len(rows) >= page_size:
            # A full page always carries a paging state; look one row ahead so the last page
            # says so instead of leading the client to an empty one.
            ahead, _ = await self._execute(
                "select_events", (run_id,), fetch_size=1, paging_state=next_state
            )
            if not ahead:
                next_state = None
        events = [_event_row(r) for r in rows]
        return EventPage(events, seal_cursor(scope, next_state) if next_state else None)

    async def get_event(self, run_id: str, event_id: uuid.UUID) -> StoredEvent | None:
        if event_id.version != 1:  # not a timeuuid: Cassandra would refuse the value
            return None
        rows, _ = await self._execute("select_event", (run_id, event_id))
        return _event_row(rows[0]) if rows else None

    async def get_run_status(self, run_id: str) -> RunStatus | None:
        rows, _ = await self._execute("select_status", (run_id,))
        return _status_row(rows[0]) if rows else None

    async def get_run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        # IN over up to _STATUSES_PER_READ partition keys: one request instead of one per run
        # (the coordinator asks the replicas; per-request overhead was most of the cost here)
        ids = list(dict.fromkeys(run_ids))
        chunks = [ids[i : i + _STATUSES_PER_READ] for i in range(0, len(ids), _STATUSES_PER_READ)]
        found = await asyncio.gather(*(self._execute("select_statuses", (c,)) for c in chunks))
        return {s.run_id: s for rows, _ in found for s in map(_status_row, rows)}

    async def recent_event_ids(self, run_id: str, limit: int) -> list[str]:
        rows, _ = await self._execute("select_event_ids", (run_id, limit))
        return [str(r[0]) for r in rows]

    async def count_events(self, run_id: str) -> int:
        rows, _ = await self._execute("count_events", (run_id,))
        return int(rows[0][0])

    async def _buckets(
        self, scope: str, name: str, since: datetime, until: datetime
    ) -> list[datetime]:
        found: list[datetime] = []
        state: bytes | None = None
        while True:  # one row per bucket, newest first; years of hours are a few pages
            rows, state = await self._execute(
                "select_buckets", (scope, name, since, until), fetch_size=5000, paging_state=state
            )
            found.extend(_utc(r[0]) for r in rows)
            if state is None:
                return found

    @staticmethod
    def _position(raw: bytes | None) -> tuple[datetime, bytes | None] | None:
        if raw is None:
            return None
        if len(raw) < 8:
            raise InvalidCursor("pagingState was not issued for this query")
        return _from_millis(int.from_bytes(raw[:8], "big", signed=True)), raw[8:] or None

    @staticmethod
    def _seal(scope: str, position: tuple[datetime, bytes | None] | None) -> str | None:
        if position is None:
            return None
        bucket, state = position
        return seal_cursor(scope, _millis(bucket).to_bytes(8, "big", signed=True) + (state or b""))

    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None = None) -> RunPage:
        scope = query.scope()
        position = self._position(open_cursor(scope, cursor) if cursor else None)
        since = _ms(query.since) if query.since else _FAR_PAST
        until = _ms(query.until) if query.until else _FAR_FUTURE
        by_job = query.job is not None
        if by_job:
            assert query.namespace is not None and query.job is not None
            job_key = (query.namespace, query.job)
            buckets = await self._buckets(
                "job", "\n".join(job_key), month_bucket(since), month_bucket(until)
            )

            async def page(bucket: datetime, n: int, state: bytes | None) -> tuple:
                return await self._execute(
                    "select_job_index",
                    (*job_key, bucket, since, until),
                    fetch_size=n,
                    paging_state=state,
                )
        else:
            index_state = query.state or ANY_STATE
            buckets = await self._buckets(
                "state", index_state, hour_bucket(since), hour_bucket(until)
            )

            async def page(bucket: datetime, n: int, state: bytes | None) -> tuple:
                return await self._execute(
                    "select_state_index",
                    (index_state, bucket, since, until),
                    fetch_size=n,
                    paging_state=state,
                )

        async def accept(rows: list) -> list[RunStatus]:
            statuses = await self.get_run_statuses([r[1] for r in rows])
            kept = []
            for sort_time, run_id in rows:
                status = statuses.get(run_id)
                # index rows are keys only; the status row decides (stale rows are skipped)
                if (
                    status is not None
                    and query.matches(status)
                    and _ms(query.ordering_time(status)) == _utc(sort_time)
                ):
                    kept.append(status)
            return kept

        runs, end = await walk_buckets(buckets, page, accept, limit, position, max(10 * limit, 500))
        return RunPage(runs, self._seal(scope, end))

    async def list_children(self, run_id: str, limit: int, cursor: str | None = None) -> RunPage:
        scope = f"children|{run_id}"
        state = open_cursor(scope, cursor) if cursor else None
        rows, next_state = await self._execute(
            "select_parent_index", (run_id,), fetch_size=limit, paging_state=state
        )
        statuses = await self.get_run_statuses([r[0] for r in rows])
        # keys only: the status row decides (a child that moved to another parent is skipped)
        runs = [
            statuses[r[0]]
            for r in rows
            if r[0] in statuses and statuses[r[0]].parent_run_id == run_id
        ]
        if next_state is not None and len(rows) >= limit:
            ahead, _ = await self._execute(
                "select_parent_index", (run_id,), fetch_size=1, paging_state=next_state
            )
            if not ahead:
                next_state = None
        return RunPage(runs, seal_cursor(scope, next_state) if next_state else None)

    async def get_non_run_events(self, namespace: str, name: str, limit: int) -> list[NonRunEvent]:
        buckets = await self._buckets("non_run", f"{namespace}\n{name}", _FAR_PAST, _FAR_FUTURE)
        found: list[NonRunEvent] = []
        for bucket in buckets:
            rows, _ = await self._execute(
                "select_non_run", (namespace, name, bucket, limit - len(found))
            )
            for event_id, kind, ns, n, source, event_time, event in rows:
                found.append(NonRunEvent(event_id, kind, ns, n, source, _utc(event_time), event))
            if len(found) >= limit:
                break
        return found

    async def get_dead_letters(self, limit: int) -> list[DeadLetter]:
        buckets = await self._buckets("dead_letters", "", _FAR_PAST, _FAR_FUTURE)
        found: list[DeadLetter] = []
        for bucket in buckets:
            rows, _ = await self._execute("select_dead_letters", (bucket, limit - len(found)))
            for row in rows:
                received = _utc(row[6])
                found.append(DeadLetter(*row[:6], received, *row[7:9], row[9], row[10]))
            if len(found) >= limit:
                break
        return found

    # ---- datasets -----------------------------------------------------------------------
    async def write_dataset_io(self, rows: Sequence[DatasetIO]) -> None:
        from cassandra.query import UNSET_VALUE  # no null cells: absent stats keep older ones

        def count(value: int | None) -> Any:
            return UNSET_VALUE if value is None else value

        noted: list = []
        writes: list[tuple[str, Hashable, Sequence[Any]]] = []
        seen: dict[tuple, datetime] = {}  # (dataset, direction, job) -> its latest time
        for r in rows:
            at = _ms(r.event_time)
            link = (r.namespace, r.name, r.direction, r.job_namespace, r.job)
            seen[link] = max(seen.get(link, at), at)
            if r.run_id is None:
                continue
            bucket = month_bucket(at)
            self._note_bucket("dataset", f"{r.namespace}\n{r.name}", bucket, writes, noted)
            io = (r.job_namespace, r.job, at, count(r.row_count), count(r.size_bytes))
            run_row = (r.namespace, r.name, bucket, r.run_id, r.direction, *io)
            writes.append(("insert_dataset_run", (r.namespace, r.name, bucket), run_row))
            of_run = (r.run_id, r.direction, r.namespace, r.name, *io)
            writes.append(("insert_dataset_of_run", ("run", r.run_id), of_run))
        # a dataset's and a job's rows are the same for every run: one each per call
        for (ns, name, direction, job_ns, job), at in seen.items():
            dataset_job = (ns, name, direction, job_ns, job, at)
            writes.append(("insert_dataset_job", ("ds", ns, name), dataset_job))
            job_dataset = (job_ns, job, direction, ns, name, at)
            writes.append(("insert_job_dataset", ("job", job_ns, job), job_dataset))
        await self._write_all(writes)
        self._remember_buckets(noted)

    @staticmethod
    def _io_row(row: Sequence[Any]) -> DatasetIO:
        return DatasetIO(*row[:6], _utc(row[6]), row[7], row[8])  # type: ignore[arg-type]

    async def _all_rows(self, name: str, values: Sequence[Any]) -> list[tuple]:
        rows: list[tuple] = []
        state: bytes | None = None
        while True:
            page, state = await self._execute(name, values, fetch_size=5000, paging_state=state)
            rows.extend(page)
            if state is None:
                return rows

    async def list_dataset_runs(
        self, namespace: str, name: str, limit: int, cursor: str | None = None
    ) -> DatasetRunPage:
        # A month's partition is read whole and sorted newest first (it is keyed by run, so a
        # run's later events update its row); the cursor is (month, position in that order).
        scope = f"dataset-runs|{namespace}|{name}"
        position = self._position(open_cursor(scope, cursor) if cursor else None)
        buckets = await self._buckets("dataset", f"{namespace}\n{name}", _FAR_PAST, _FAR_FUTURE)
        if position is not None:
            buckets = [b for b in buckets if b <= position[0]]
        found: list[DatasetIO] = []
        end = None
        for bucket in buckets:
            rows = await self._all_rows("select_dataset_runs", (namespace, name, bucket))
            ios = sorted(
                (self._io_row(r) for r in rows),
                key=lambda io: (-io.event_time.timestamp(), io.run_id or "", io.direction),
            )
            skip = (
                int.from_bytes(position[1], "big")
                if position is not None and bucket == position[0] and position[1]
                else 0
            )
            take = ios[skip : skip + limit - len(found)]
            found.extend(take)
            if len(found) >= limit:
                if skip + len(take) < len(ios):
                    end = (bucket, (skip + len(take)).to_bytes(8, "big"))
                elif bucket != buckets[-1]:
                    end = (buckets[buckets.index(bucket) + 1], None)
                break
        statuses = await self.get_run_statuses([io.run_id for io in found if io.run_id])
        runs = [DatasetRun(io, statuses.get(io.run_id or "")) for io in found]
        return DatasetRunPage(runs, self._seal(scope, end))

    async def _links(self, name: str, key: tuple[str, str]) -> list[DatasetLink]:
        rows = await self._all_rows(name, key)
        links = [DatasetLink(r[0], r[1], r[2], _utc(r[3])) for r in rows]  # type: ignore[arg-type]
        return sorted(links, key=lambda link: link.last_seen, reverse=True)[:1000]

    async def dataset_jobs(self, namespace: str, name: str) -> list[DatasetLink]:
        return await self._links("select_dataset_jobs", (namespace, name))

    async def job_datasets(self, namespace: str, job: str) -> list[DatasetLink]:
        return await self._links("select_job_datasets", (namespace, job))

    async def run_datasets(self, run_id: str) -> list[DatasetIO]:
        rows = await self._all_rows("select_datasets_of_run", (run_id,))
        return [self._io_row(r) for r in rows]

    # ---- alerts -------------------------------------------------------------------------
    async def _record_alert(self, alert: Alert) -> tuple[Alert, str] | None:
        """The alert as first recorded (and its text) unless published already."""
        text = orjson.dumps(alert.to_dict()).decode()
        raised = _ms(alert.raised_at)
        rows, _ = await self._execute(
            "insert_alert", (alert.alert_id, raised, alert.severity, text)
        )
        if not (rows and rows[0][0]):  # not applied: recorded before (or a retried insert)
            found, _ = await self._execute("select_alert", (alert.alert_id,))
            if not found or found[0][1]:
                return None  # published already
            return Alert.from_dict(orjson.loads(found[0][0])), found[0][0]
        return alert, text

    async def record_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        unique = list({a.alert_id: a for a in alerts}.values())
        recorded = [r for r in await asyncio.gather(*map(self._record_alert, unique)) if r]
        noted: list = []
        writes: list = []
        for alert, text in recorded:
            raised = _ms(alert.raised_at)
            bucket = day_bucket(raised)
            self._note_bucket("alerts", "", bucket, writes, noted)
            row = (bucket, raised, alert.alert_id, alert.severity, text)
            writes.append(("insert_alert_by_day", bucket, row))
        await self._write_all(writes)
        self._remember_buckets(noted)
        return [alert for alert, _ in recorded]

    async def mark_alerts_published(self, alert_ids: Sequence[str]) -> None:
        ids = dict.fromkeys(alert_ids)
        await self._write_all([("mark_alert_published", i, (i,)) for i in ids])

    async def list_alerts(
        self, query: AlertQuery, limit: int, cursor: str | None = None
    ) -> AlertPage:
        scope = query.scope()
        position = self._position(open_cursor(scope, cursor) if cursor else None)
        lower = _ms(query.since) if query.since else _FAR_PAST
        severities = set(query.severities)
        buckets = await self._buckets("alerts", "", day_bucket(lower), _FAR_FUTURE)

        async def page(bucket: datetime, n: int, state: bytes | None) -> tuple:
            return await self._execute(
                "select_alerts_by_day", (bucket, lower), fetch_size=n, paging_state=state
            )

        async def accept(rows: list) -> list[Alert]:
            return [
                Alert.from_dict(orjson.loads(text))
                for _, _, severity, text in rows
                if severity in severities
            ]

        alerts, end = await walk_buckets(
            buckets, page, accept, limit, position, max(10 * limit, 500)
        )
        return AlertPage(alerts, self._seal(scope, end))

    async def health(self) -> None:
        rows, _ = await self._execute("select_meta", ("schema_version",))
        if not rows:
            raise StoreError("schema missing: schema_meta.schema_version not found")


__all__ = ["CassandraStore"]
