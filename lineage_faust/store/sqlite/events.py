"""Events, JobEvents/DatasetEvents and dead letters in SQLite: written once, read newest first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from lineage_faust.domain.identity import sort_key
from lineage_faust.domain.records import (
    DeadLetter,
    NonRunEvent,
    StoredEvent,
)
from lineage_faust.store.cursors import open_cursor, seal_cursor
from lineage_faust.store.errors import InvalidCursor
from lineage_faust.store.queries import (
    EventPage,
)
from lineage_faust.store.sqlite.codecs import (
    _EVENT_COLUMNS,
    _LIVE,
    _dt,
    _event_row,
    _now_us,
    _unpack_text,
    _us,
)
from lineage_faust.store.sqlite.connection import SQLiteConnection


class SQLiteEvents(SQLiteConnection):
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
