"""The embedded store: one SQLite file in WAL mode.

The worker writes and the API process reads the same file at the same time (WAL lets readers
proceed while a writer commits). Each Store instance owns one connection used from one
dedicated thread, so the asyncio loop never blocks on disk. Batches are written in one
transaction; every statement is parameterised.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..identity import sort_key
from .base import (
    DeadLetter,
    EventPage,
    InvalidCursor,
    NonRunEvent,
    RunStatus,
    Store,
    StoredEvent,
    StoreError,
    decode_cursor,
    encode_cursor,
)

SCHEMA_VERSION = 1
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Atlas's events_by_run columns, and eventSort orders rows the way Cassandra orders timeuuids.
CREATE TABLE IF NOT EXISTS events_by_run (
    id INTEGER PRIMARY KEY,
    runId TEXT NOT NULL,
    eventSort BLOB NOT NULL,
    eventId TEXT NOT NULL,
    source TEXT NOT NULL,
    jobName TEXT NOT NULL,
    eventTime INTEGER NOT NULL,          -- microseconds since 1970, UTC
    event TEXT NOT NULL,                 -- the original JSON, verbatim
    status TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_run_pk ON events_by_run (runId, eventSort);

CREATE TABLE IF NOT EXISTS run_status (
    runId TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    namespace TEXT NOT NULL,
    jobName TEXT NOT NULL,
    parentRunId TEXT,
    rootRunId TEXT,
    firstEventTime INTEGER,
    lastEventTime INTEGER,
    startTime INTEGER,
    endTime INTEGER,
    durationMs INTEGER,
    eventCount INTEGER NOT NULL,
    lastEventType TEXT,
    errorMessage TEXT,
    nominalStartTime TEXT,
    processingType TEXT,
    updatedAt INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS run_status_by_state ON run_status (state, lastEventTime);
CREATE INDEX IF NOT EXISTS run_status_by_parent ON run_status (parentRunId);

CREATE TABLE IF NOT EXISTS non_run_events (
    id INTEGER PRIMARY KEY,
    eventId TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    eventTime INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS non_run_events_by_name ON non_run_events (namespace, name, eventTime);

CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    field TEXT,
    receivedAt INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    UNIQUE (topic, partition, "offset")
);
"""

_EVENT_COLUMNS = "eventId, runId, jobName, source, eventTime, status, event"
_STATUS_COLUMNS = (
    "runId, state, namespace, jobName, parentRunId, rootRunId, firstEventTime, lastEventTime, "
    "startTime, endTime, durationMs, eventCount, lastEventType, errorMessage, nominalStartTime, "
    "processingType, updatedAt"
)
_CURSOR_VERSION = b"\x01"


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(value: int | None) -> datetime | None:
    if value is None:
        return None
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def _event_row(row: tuple) -> StoredEvent:
    event_id, run_id, job_name, source, event_time, status, event = row
    return StoredEvent(
        uuid.UUID(event_id), run_id, job_name, source, _dt(event_time), status, event
    )


# positions of the microsecond time columns in _STATUS_COLUMNS
_STATUS_TIMES = (6, 7, 8, 9, 16)


def _status_row(row: tuple) -> RunStatus:
    """A run_status row, in _STATUS_COLUMNS order, to the RunStatus of the same field order."""
    values = list(row)
    for i in _STATUS_TIMES:
        values[i] = _dt(values[i])
    return RunStatus(*values)


def _run_tag(run_id: str) -> bytes:
    return hashlib.blake2b(run_id.encode("utf-8", "surrogatepass"), digest_size=4).digest()


class SQLiteStore(Store):
    def __init__(self, path: str | Path, *, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._timeout_s = timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

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
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (only an OS crash can lose the tail).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout_s * 1000)}")
        conn.execute("PRAGMA cache_size=-32000")
        return conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema version {row[0]} is newer than this code ({SCHEMA_VERSION}); "
                    "upgrade lineage-faust"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One transaction for a whole batch (idempotent statements: safe to repeat)."""
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
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

    # ---- writes -----------------------------------------------------------------------
    async def write_events(self, events: Sequence[StoredEvent]) -> None:
        rows = [
            (
                e.run_id,
                sort_key(e.event_id),
                str(e.event_id),
                e.source,
                e.job_name,
                _us(e.event_time),
                e.event,
                e.status,
            )
            for e in events
        ]
        sql = (
            "INSERT INTO events_by_run (runId, eventSort, eventId, source, jobName, eventTime, "
            "event, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (runId, eventSort) DO NOTHING"
        )
        await self._write_many(sql, rows)

    async def write_non_run_events(self, events: Sequence[NonRunEvent]) -> None:
        rows = [
            (str(e.event_id), e.kind, e.namespace, e.name, e.source, _us(e.event_time), e.event)
            for e in events
        ]
        sql = (
            "INSERT INTO non_run_events (eventId, kind, namespace, name, source, eventTime, event)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (eventId) DO NOTHING"
        )
        await self._write_many(sql, rows)

    async def write_run_statuses(self, statuses: Sequence[RunStatus]) -> None:
        rows = [
            (
                s.run_id,
                s.state,
                s.namespace,
                s.job,
                s.parent_run_id,
                s.root_run_id,
                _us(s.first_event_time),
                _us(s.last_event_time),
                _us(s.start_time),
                _us(s.end_time),
                s.duration_ms,
                s.event_count,
                s.last_event_type,
                s.error_message,
                s.nominal_start_time,
                s.processing_type,
                _us(s.updated_at),
            )
            for s in statuses
        ]
        columns = _STATUS_COLUMNS.split(", ")
        updates = ", ".join(f"{c}=excluded.{c}" for c in columns[1:])
        sql = (
            f"INSERT INTO run_status ({_STATUS_COLUMNS}) VALUES ({', '.join('?' * len(columns))})"
            f" ON CONFLICT (runId) DO UPDATE SET {updates}"
        )
        await self._write_many(sql, rows)

    async def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
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
            )
            for d in letters
        ]
        sql = (
            'INSERT INTO dead_letters (topic, partition, "offset", reason, detail, field, '
            "receivedAt, key, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            'ON CONFLICT (topic, partition, "offset") DO NOTHING'
        )
        await self._write_many(sql, rows)

    # ---- reads ------------------------------------------------------------------------
    async def get_events(self, run_id: str, page_size: int, cursor: str | None = None) -> EventPage:
        after: bytes | None = None
        if cursor:
            raw = decode_cursor(cursor)
            if len(raw) != 21 or raw[:1] != _CURSOR_VERSION or raw[1:5] != _run_tag(run_id):
                raise InvalidCursor("pagingState was not issued for this run")
            after = raw[5:]

        def query(conn: sqlite3.Connection) -> list[tuple]:
            if after is None:
                sql = (
                    f"SELECT {_EVENT_COLUMNS}, eventSort FROM events_by_run WHERE runId=? "
                    "ORDER BY eventSort DESC LIMIT ?"
                )
                return conn.execute(sql, (run_id, page_size + 1)).fetchall()
            sql = (
                f"SELECT {_EVENT_COLUMNS}, eventSort FROM events_by_run "
                "WHERE runId=? AND eventSort < ? ORDER BY eventSort DESC LIMIT ?"
            )
            return conn.execute(sql, (run_id, after, page_size + 1)).fetchall()

        rows = await self._run(query)
        next_cursor = None
        if len(rows) > page_size:
            rows = rows[:page_size]
            next_cursor = encode_cursor(_CURSOR_VERSION + _run_tag(run_id) + rows[-1][-1])
        return EventPage([_event_row(r[:-1]) for r in rows], next_cursor)

    async def get_event(self, run_id: str, event_id: uuid.UUID) -> StoredEvent | None:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events_by_run WHERE runId=? AND eventSort=?"
        key = sort_key(event_id)
        row = await self._run(lambda conn: conn.execute(sql, (run_id, key)).fetchone())
        return _event_row(row) if row else None

    async def get_run_status(self, run_id: str) -> RunStatus | None:
        sql = f"SELECT {_STATUS_COLUMNS} FROM run_status WHERE runId=?"
        row = await self._run(lambda conn: conn.execute(sql, (run_id,)).fetchone())
        return _status_row(row) if row else None

    async def get_run_statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}

        def query(conn: sqlite3.Connection) -> list[tuple]:
            rows: list[tuple] = []
            for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
                chunk = ids[start : start + 500]
                sql = (
                    f"SELECT {_STATUS_COLUMNS} FROM run_status "
                    f"WHERE runId IN ({', '.join('?' * len(chunk))})"
                )
                rows.extend(conn.execute(sql, chunk).fetchall())
            return rows

        return {row[0]: _status_row(row) for row in await self._run(query)}

    async def recent_event_ids(self, run_id: str, limit: int) -> list[str]:
        sql = "SELECT eventId FROM events_by_run WHERE runId=? ORDER BY eventSort DESC LIMIT ?"
        rows = await self._run(lambda conn: conn.execute(sql, (run_id, limit)).fetchall())
        return [r[0] for r in rows]

    async def count_events(self, run_id: str) -> int:
        sql = "SELECT count(*) FROM events_by_run WHERE runId=?"
        return (await self._run(lambda conn: conn.execute(sql, (run_id,)).fetchone()))[0]

    async def get_non_run_events(self, namespace: str, name: str, limit: int) -> list[NonRunEvent]:
        sql = (
            "SELECT eventId, kind, namespace, name, source, eventTime, event FROM non_run_events "
            "WHERE namespace=? AND name=? ORDER BY eventTime DESC LIMIT ?"
        )
        rows = await self._run(lambda conn: conn.execute(sql, (namespace, name, limit)).fetchall())
        return [NonRunEvent(uuid.UUID(r[0]), r[1], r[2], r[3], r[4], _dt(r[5]), r[6]) for r in rows]

    async def get_dead_letters(self, limit: int) -> list[DeadLetter]:
        sql = (
            'SELECT topic, partition, "offset", reason, detail, field, receivedAt, key, value '
            "FROM dead_letters ORDER BY id DESC LIMIT ?"
        )
        rows = await self._run(lambda conn: conn.execute(sql, (limit,)).fetchall())
        return [DeadLetter(r[0], r[1], r[2], r[3], r[4], r[5], _dt(r[6]), r[7], r[8]) for r in rows]

    async def health(self) -> None:
        def probe(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                raise StoreError("schema missing: meta.schema_version not found")

        await self._run(probe)


__all__ = ["InvalidCursor", "SQLiteStore"]
