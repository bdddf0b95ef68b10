"""The embedded store: one SQLite file in WAL mode.

The worker writes and the API process reads the same file at the same time (WAL lets readers
proceed while a writer commits). Each Store instance owns one connection used from one
dedicated thread, so the asyncio loop never blocks on disk. Batches are written in one
transaction; every statement is parameterised.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

from lineage_faust.domain.alerting import Alert
from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.domain.identity import sort_key
from lineage_faust.domain.records import (
    STATUS_COLUMNS,
    DeadLetter,
    NonRunEvent,
    RunStatus,
    StoredEvent,
    run_time,
    state_time,
    status_to_row,
)
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
from lineage_faust.store.sqlite.codecs import (
    _EVENT_COLUMNS,
    _LIVE,
    _PURGE_EVERY_S,
    READER_CACHE_KB,
    READERS,
    WRITER_CACHE_KB,
    _chunks,
    _dt,
    _event_row,
    _execute_rows,
    _now_us,
    _open_time_cursor,
    _padded,
    _seal_time_cursor,
    _status_row,
    _unpack_text,
    _us,
    _values,
    pack_text,
)
from lineage_faust.store.sqlite.schema import (
    _DATA_TABLES,
    _MIGRATE_FROM_1,
    _MIGRATE_TO_5,
    _SCHEMA,
    SCHEMA_VERSION,
    _statements,
)

_T = TypeVar("_T")


class SQLiteStore(Store):
    pack_text = staticmethod(pack_text)  # events come packed: see pack_text

    def __init__(
        self, path: str | Path, *, timeout_s: float = 5.0, retention_s: int | None = None
    ) -> None:
        self.path = Path(path)
        self._options = {"timeout_s": timeout_s, "retention_s": retention_s}
        self._timeout_s = timeout_s
        self._retention_us = retention_s * 1_000_000 if retention_s else None
        self._next_purge = 0.0
        # Two lanes: writes in one thread with its own connection, reads in up to READERS
        # threads with one connection each (WAL lets reads run beside a write), so the
        # worker's run-state reads do not queue behind the next batch's inserts, and the API's
        # concurrent lookups that miss the page cache wait on the disk side by side.
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._read_executor: ThreadPoolExecutor | None = None
        self._reader = threading.local()  # .conn: this read thread's connection
        self._read_conns: list[sqlite3.Connection] = []  # every reader's, to close them

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled unopened: connections and threads belong to the process that opens it
        return (partial(SQLiteStore, self.path, **self._options), ())

    def for_helper(self) -> SQLiteStore:
        # SQLite takes writers from several processes (WAL: each waits its turn for the lock)
        return SQLiteStore(self.path, **self._options)

    # ---- plumbing ---------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            if self._conn is None:
                self._conn = self._connect()
            return fn(self._conn)
        except sqlite3.DataError as exc:  # a value SQLite can never hold (SQLITE_TOOBIG)
            raise StoreRefused(f"sqlite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._read_executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_executor, self._call_read, fn)

    def _call_read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            conn = getattr(self._reader, "conn", None)
            if conn is None:
                # closed by close() from another thread, once the read threads have stopped
                conn = self._reader.conn = self._connect(
                    check_same_thread=False, cache_kb=READER_CACHE_KB
                )
                self._read_conns.append(conn)
            return fn(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    def _connect(
        self, *, check_same_thread: bool = True, cache_kb: int = WRITER_CACHE_KB
    ) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self._timeout_s,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (only an OS crash can lose the tail).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout_s * 1000)}")
        conn.execute(f"PRAGMA cache_size=-{cache_kb}")
        return conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            found = int(row[0]) if row else None
            if found is not None and found > SCHEMA_VERSION:
                raise SchemaError(
                    f"store schema version {found} is newer than this code ({SCHEMA_VERSION}); "
                    "upgrade lineage-faust"
                )
            if found == 1:
                for statement in _statements(_MIGRATE_FROM_1):
                    conn.execute(statement)
            if found is not None and found < 5:
                for statement in _statements(_MIGRATE_TO_5):
                    conn.execute(statement)
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _write_rows(self, head: str, rows: list[tuple[Any, ...]], tail: str = "") -> None:
        """One transaction for a whole batch (idempotent statements: safe to repeat)."""
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _execute_rows(conn, head, rows, tail)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._purge_if_due(conn)

        await self._run(write)

    def _expires_at(self) -> int | None:
        return None if self._retention_us is None else _now_us() + self._retention_us

    def _purge_if_due(self, conn: sqlite3.Connection) -> None:
        """Delete rows past their retention, at most once a minute (reads hide them anyway)."""
        if self._retention_us is None or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + _PURGE_EVERY_S
        now = _now_us()
        for table in _DATA_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE expiresAt <= ?", (now,))

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
            self._read_executor = ThreadPoolExecutor(READERS, thread_name_prefix="sqlite-read")
        await self._run(self._create_schema)

    async def close(self) -> None:
        if self._executor is None:
            return

        def _close(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(_close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None
        if self._read_executor is not None:
            self._read_executor.shutdown(wait=True)
            self._read_executor = None
        for conn in self._read_conns:  # no read thread is left to use them
            conn.close()
        self._read_conns.clear()
        self._reader = threading.local()

    # ---- writes -----------------------------------------------------------------------
    async def _insert_new(
        self, table: str, columns: str, rows: list[tuple[Any, ...]], key: str
    ) -> int:
        """Insert rows whose ``key`` (the first columns) is not there yet, in one transaction;
        the number inserted. With a retention, rewriting an existing row refreshes its expiry
        (as Cassandra's rewrites refresh the TTL). The ``event`` column's text is packed
        here unless it came packed (bytes)."""
        if not rows:
            return 0
        expires = self._expires_at()
        width = key.count(",") + 1
        text_column = columns.split(", ").index("event")

        def write(conn: sqlite3.Connection) -> int:
            packed = [
                row
                if isinstance(row[text_column], bytes)  # packed already (StoredEvent.packed)
                else (*row[:text_column], pack_text(row[text_column]), *row[text_column + 1 :])
                for row in rows
            ]
            conn.execute("BEGIN IMMEDIATE")
            try:
                inserted = _execute_rows(
                    conn,
                    f"INSERT INTO {table} ({columns})",
                    packed,
                    f"ON CONFLICT ({key}) DO NOTHING",
                )
                if expires is not None and inserted < len(rows):
                    for chunk in _chunks([row[:width] for row in rows]):
                        placeholders, params = _values(chunk)
                        conn.execute(
                            f"UPDATE {table} SET expiresAt = ? WHERE ({key}) IN "
                            f"(VALUES {placeholders})",
                            [expires, *params],
                        )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._purge_if_due(conn)
            return inserted

        return await self._run(write)

    async def write_events(self, events: Sequence[StoredEvent]) -> int:
        expires = self._expires_at()
        rows = [
            (
                e.run_id,
                sort_key(e.event_id),
                str(e.event_id),
                e.source,
                e.job_name,
                _us(e.event_time),
                e.event if e.packed is None else e.packed,
                e.status,
                expires,
            )
            for e in events
        ]
        columns = "runId, eventSort, eventId, source, jobName, eventTime, event, status, expiresAt"
        return await self._insert_new("events_by_run", columns, rows, "runId, eventSort")

    async def write_non_run_events(self, events: Sequence[NonRunEvent]) -> int:
        expires = self._expires_at()
        rows = [
            (
                str(e.event_id),
                e.kind,
                e.namespace,
                e.name,
                e.source,
                _us(e.event_time),
                e.event if e.packed is None else e.packed,
                expires,
            )
            for e in events
        ]
        columns = "eventId, kind, namespace, name, source, eventTime, event, expiresAt"
        return await self._insert_new("non_run_events", columns, rows, "eventId")

    async def write_run_statuses(
        self, statuses: Sequence[RunStatus], previous: Mapping[str, RunStatus] | None = None
    ) -> None:
        # SQLite's own indexes follow the row, so ``previous`` is not needed here.
        expires = self._expires_at()
        rows = [
            (*status_to_row(s, _us), _us(run_time(s)), _us(state_time(s)), expires)
            for s in statuses
        ]
        columns = [*STATUS_COLUMNS.split(", "), "runTime", "stateTime", "expiresAt"]
        updates = ", ".join(f"{c}=excluded.{c}" for c in columns[1:])
        await self._write_rows(
            f"INSERT INTO run_status ({', '.join(columns)})",
            rows,
            f"ON CONFLICT (runId) DO UPDATE SET {updates}",
        )

    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        expires = self._expires_at()
        rows = [
            (
                d.topic,
                d.partition,
                d.offset,
                d.reason,
                d.detail,
                d.field,
                _us(d.received_at),
                d.key,
                d.value,
                expires,
                d.value_bytes,
                d.value_sha256,
            )
            for d in letters
        ]
        await self._write_rows(
            'INSERT INTO dead_letters (topic, partition, "offset", reason, detail, field, '
            "receivedAt, key, value, expiresAt, valueBytes, valueSha256)",
            rows,
            'ON CONFLICT (topic, partition, "offset") DO UPDATE SET expiresAt=excluded.expiresAt',
        )

    # ---- reads ------------------------------------------------------------------------
    # Every read hides rows past their retention (``_LIVE``); the purge deletes them later.
    async def get_events(self, run_id: str, page_size: int, cursor: str | None = None) -> EventPage:
        scope = f"events|{run_id}"
        after = open_cursor(scope, cursor) if cursor else None
        if after is not None and len(after) != 16:
            raise InvalidCursor("pagingState was not issued for this run")
        sql = (
            f"SELECT {_EVENT_COLUMNS}, eventSort FROM events_by_run WHERE runId=? AND {_LIVE}"
            f"{' AND eventSort < ?' if after else ''} ORDER BY eventSort DESC LIMIT ?"
        )
        params = (run_id, _now_us(), *((after,) if after else ()), page_size + 1)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        next_cursor = None
        if len(rows) > page_size:
            rows = rows[:page_size]
            next_cursor = seal_cursor(scope, rows[-1][-1])
        return EventPage([_event_row(r[:-1]) for r in rows], next_cursor)

    async def get_event(self, run_id: str, event_id: uuid.UUID) -> StoredEvent | None:
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM events_by_run WHERE runId=? AND eventSort=? AND {_LIVE}"
        )
        params = (run_id, sort_key(event_id), _now_us())
        row = await self._read(lambda conn: conn.execute(sql, params).fetchone())
        return _event_row(row) if row else None

    async def get_run_status(self, run_id: str) -> RunStatus | None:
        return (await self.get_run_statuses([run_id])).get(run_id)

    async def get_run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}

        def query(conn: sqlite3.Connection) -> list[tuple]:
            rows: list[tuple] = []
            now = _now_us()
            for chunk in _padded(ids):
                sql = (
                    f"SELECT {STATUS_COLUMNS} FROM run_status "
                    f"WHERE runId IN ({', '.join('?' * len(chunk))}) AND {_LIVE}"
                )
                rows.extend(conn.execute(sql, (*chunk, now)).fetchall())
            return rows

        return {row[0]: _status_row(row) for row in await self._read(query)}

    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None = None) -> RunPage:
        scope = query.scope()
        column = "stateTime" if query.state and not query.job else "runTime"
        where, params = [_LIVE], [_now_us()]
        for sql_column, value in (
            ("state", query.state),
            ("namespace", query.namespace),
            ("jobName", query.job),
        ):
            if value is not None:
                where.append(f"{sql_column} = ?")
                params.append(value)
        if query.since is not None:
            where.append(f"{column} >= ?")
            params.append(_us(query.since))
        if query.until is not None:
            where.append(f"{column} <= ?")
            params.append(_us(query.until))
        if position := _open_time_cursor(scope, cursor):
            at, after_run = position
            where.append(f"({column} < ? OR ({column} = ? AND runId > ?))")
            params += [at, at, after_run]
        sql = (
            f"SELECT {STATUS_COLUMNS}, {column} FROM run_status WHERE {' AND '.join(where)} "
            f"ORDER BY {column} DESC, runId ASC LIMIT ?"
        )
        params.append(limit + 1)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _seal_time_cursor(scope, rows[-1][-1], rows[-1][0])
        return RunPage([_status_row(r[:-1]) for r in rows], next_cursor)

    async def list_children(self, run_id: str, limit: int, cursor: str | None = None) -> RunPage:
        scope = f"children|{run_id}"
        after = open_cursor(scope, cursor).decode() if cursor else ""
        sql = (
            f"SELECT {STATUS_COLUMNS} FROM run_status WHERE parentRunId = ? AND runId > ? "
            f"AND {_LIVE} ORDER BY runId LIMIT ?"
        )
        params = (run_id, after, _now_us(), limit + 1)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = seal_cursor(scope, rows[-1][0].encode())
        return RunPage([_status_row(r) for r in rows], next_cursor)

    async def recent_event_ids(self, run_id: str, limit: int) -> list[str]:
        sql = (
            f"SELECT eventId FROM events_by_run WHERE runId=? AND {_LIVE} "
            "ORDER BY eventSort DESC LIMIT ?"
        )
        params = (run_id, _now_us(), limit)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [r[0] for r in rows]

    async def count_events(self, run_id: str) -> int:
        sql = f"SELECT count(*) FROM events_by_run WHERE runId=? AND {_LIVE}"
        params = (run_id, _now_us())
        return (await self._read(lambda conn: conn.execute(sql, params).fetchone()))[0]

    async def get_non_run_events(self, namespace: str, name: str, limit: int) -> list[NonRunEvent]:
        sql = (
            "SELECT eventId, kind, namespace, name, source, eventTime, event FROM non_run_events "
            f"WHERE namespace=? AND name=? AND {_LIVE} ORDER BY eventTime DESC LIMIT ?"
        )
        params = (namespace, name, _now_us(), limit)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [
            NonRunEvent(uuid.UUID(r[0]), r[1], r[2], r[3], r[4], _dt(r[5]), _unpack_text(r[6]))
            for r in rows
        ]

    async def get_dead_letters(self, limit: int) -> list[DeadLetter]:
        sql = (
            'SELECT topic, partition, "offset", reason, detail, field, receivedAt, key, value, '
            f"valueBytes, valueSha256 FROM dead_letters WHERE {_LIVE} "
            "ORDER BY receivedAt DESC, id DESC LIMIT ?"
        )
        params = (_now_us(), limit)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [
            DeadLetter(*r[:6], _dt(r[6]), r[7], r[8], value_bytes=r[9], value_sha256=r[10])
            for r in rows
        ]

    # ---- datasets ---------------------------------------------------------------------
    async def write_dataset_io(self, rows: Sequence[DatasetIO]) -> None:
        if not rows:
            return
        expires = self._expires_at()
        runs = [
            (r.namespace, r.name, r.direction, r.run_id, r.job_namespace, r.job,
             _us(r.event_time), r.row_count, r.size_bytes, expires)
            for r in rows
            if r.run_id is not None
        ]  # fmt: skip
        jobs = [
            (r.namespace, r.name, r.direction, r.job_namespace, r.job, _us(r.event_time), expires)
            for r in rows
        ]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _execute_rows(
                    conn,
                    "INSERT INTO dataset_io (dsNamespace, dsName, direction, runId, "
                    "jobNamespace, jobName, eventTime, rowCount, sizeBytes, expiresAt)",
                    runs,
                    "ON CONFLICT (dsNamespace, dsName, direction, runId) DO UPDATE SET "
                    "eventTime = max(eventTime, excluded.eventTime), "
                    "rowCount = coalesce(excluded.rowCount, rowCount), "
                    "sizeBytes = coalesce(excluded.sizeBytes, sizeBytes), "
                    "expiresAt = excluded.expiresAt",
                )
                _execute_rows(
                    conn,
                    "INSERT INTO dataset_jobs (dsNamespace, dsName, direction, jobNamespace, "
                    "jobName, lastSeen, expiresAt)",
                    jobs,
                    "ON CONFLICT (dsNamespace, dsName, direction, jobNamespace, jobName) "
                    "DO UPDATE SET lastSeen = max(lastSeen, excluded.lastSeen), "
                    "expiresAt = excluded.expiresAt",
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    _IO_COLUMNS = (
        "dsNamespace, dsName, direction, runId, jobNamespace, jobName, eventTime, rowCount, "
        "sizeBytes"
    )

    @staticmethod
    def _io_row(row: Sequence[Any]) -> DatasetIO:
        return DatasetIO(*row[:6], _dt(row[6]), row[7], row[8])  # type: ignore[arg-type]

    async def list_dataset_runs(
        self, namespace: str, name: str, limit: int, cursor: str | None = None
    ) -> DatasetRunPage:
        scope = f"dataset-runs|{namespace}|{name}"
        where = ["dsNamespace = ?", "dsName = ?", _LIVE]
        params: list[Any] = [namespace, name, _now_us()]
        if position := _open_time_cursor(scope, cursor):
            at, key = position
            after_run, _, after_direction = key.partition("\n")
            where.append(
                "(eventTime < ? OR (eventTime = ? AND (runId > ? OR "
                "(runId = ? AND direction > ?))))"
            )
            params += [at, at, after_run, after_run, after_direction]
        sql = (
            f"SELECT {self._IO_COLUMNS} FROM dataset_io WHERE {' AND '.join(where)} "
            "ORDER BY eventTime DESC, runId ASC, direction ASC LIMIT ?"
        )
        params.append(limit + 1)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = _seal_time_cursor(scope, last[6], f"{last[3]}\n{last[2]}")
        ios = [self._io_row(r) for r in rows]
        statuses = await self.get_run_statuses([io.run_id for io in ios if io.run_id])
        return DatasetRunPage(
            [DatasetRun(io, statuses.get(io.run_id or "")) for io in ios], next_cursor
        )

    async def _links(self, sql: str, params: tuple) -> list[DatasetLink]:
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [DatasetLink(r[0], r[1], r[2], _dt(r[3])) for r in rows]  # type: ignore[arg-type]

    async def dataset_jobs(self, namespace: str, name: str) -> list[DatasetLink]:
        return await self._links(
            "SELECT jobNamespace, jobName, direction, lastSeen FROM dataset_jobs "
            f"WHERE dsNamespace = ? AND dsName = ? AND {_LIVE} ORDER BY lastSeen DESC LIMIT 1000",
            (namespace, name, _now_us()),
        )

    async def job_datasets(self, namespace: str, job: str) -> list[DatasetLink]:
        return await self._links(
            "SELECT dsNamespace, dsName, direction, lastSeen FROM dataset_jobs "
            f"WHERE jobNamespace = ? AND jobName = ? AND {_LIVE} ORDER BY lastSeen DESC "
            "LIMIT 1000",
            (namespace, job, _now_us()),
        )

    async def run_datasets(self, run_id: str) -> list[DatasetIO]:
        sql = (
            f"SELECT {self._IO_COLUMNS} FROM dataset_io WHERE runId = ? AND {_LIVE} "
            "ORDER BY direction, dsNamespace, dsName"
        )
        rows = await self._read(lambda conn: conn.execute(sql, (run_id, _now_us())).fetchall())
        return [self._io_row(r) for r in rows]

    # ---- alerts -----------------------------------------------------------------------
    async def record_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        if not alerts:
            return []
        expires = self._expires_at()
        rows = [
            (a.alert_id, _us(a.raised_at), a.severity, orjson.dumps(a.to_dict()).decode(), expires)
            for a in alerts
        ]
        ids = [a.alert_id for a in alerts]

        def record(conn: sqlite3.Connection) -> list[tuple]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _execute_rows(
                    conn,
                    "INSERT OR IGNORE INTO alerts (alertId, raisedAt, severity, alert, expiresAt)",
                    rows,
                )
                marks = ",".join("?" * len(ids))
                pending = conn.execute(
                    f"SELECT alert FROM alerts WHERE alertId IN ({marks}) AND published = 0",
                    ids,
                ).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return pending

        pending = {}
        for (text,) in await self._run(record):
            alert = Alert.from_dict(orjson.loads(text))
            pending[alert.alert_id] = alert
        return [pending[i] for i in dict.fromkeys(ids) if i in pending]

    async def mark_alerts_published(self, alert_ids: Sequence[str]) -> None:
        await self._write_rows(
            "UPDATE alerts SET published = 1 WHERE alertId IN (", [(i,) for i in alert_ids], ")"
        )

    async def list_alerts(
        self, query: AlertQuery, limit: int, cursor: str | None = None
    ) -> AlertPage:
        scope = query.scope()
        severities = query.severities
        where = [_LIVE, f"severity IN ({','.join('?' * len(severities))})"]
        params: list[Any] = [_now_us(), *severities]
        if query.since is not None:
            where.append("raisedAt >= ?")
            params.append(_us(query.since))
        if position := _open_time_cursor(scope, cursor):
            at, after = position
            where.append("(raisedAt < ? OR (raisedAt = ? AND alertId > ?))")
            params += [at, at, after]
        sql = (
            f"SELECT alert, raisedAt, alertId FROM alerts WHERE {' AND '.join(where)} "
            "ORDER BY raisedAt DESC, alertId ASC LIMIT ?"
        )
        params.append(limit + 1)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            _, at, last_id = rows[-1]
            next_cursor = _seal_time_cursor(scope, at, last_id)
        return AlertPage([Alert.from_dict(orjson.loads(r[0])) for r in rows], next_cursor)

    async def counts(self) -> dict[str, int] | None:
        def count(conn: sqlite3.Connection) -> dict[str, int]:
            now = _now_us()
            found = {
                table: conn.execute(
                    f"SELECT count(*) FROM {table} WHERE {_LIVE}", (now,)
                ).fetchone()[0]
                for table in ("events_by_run", "non_run_events", "dead_letters", "alerts")
            }
            by_state = conn.execute(
                f"SELECT state, count(*) FROM run_status WHERE {_LIVE} GROUP BY state", (now,)
            ).fetchall()
            found.update({f"runs {state}": n for state, n in sorted(by_state)})
            return found

        return await self._read(count)

    async def health(self) -> None:
        def probe(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                raise StoreError("schema missing: meta.schema_version not found")

        await self._run(probe)


__all__ = ["InvalidCursor", "SQLiteStore"]
