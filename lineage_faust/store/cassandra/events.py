"""Events (Atlas's ``events_by_run``), JobEvents/DatasetEvents and dead letters on Cassandra.

Which events of a batch are new is read first (``IN`` over a few runs per read) so the
worker's accounting is exact; then every row is written (idempotent upserts, batched per
partition by ``session``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable, Sequence
from typing import Any

from lineage_faust.domain.records import (
    DeadLetter,
    NonRunEvent,
    StoredEvent,
)
from lineage_faust.store.cassandra.codecs import (
    _FAR_FUTURE,
    _FAR_PAST,
    _RUNS_PER_READ,
    _event_row,
    _ms,
    _utc,
    day_bucket,
    month_bucket,
)
from lineage_faust.store.cassandra.session import CassandraSession
from lineage_faust.store.cursors import open_cursor, seal_cursor
from lineage_faust.store.errors import StoreRefused
from lineage_faust.store.queries import (
    EventPage,
)


class CassandraEvents(CassandraSession):
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

    async def recent_event_ids(self, run_id: str, limit: int) -> list[str]:
        rows, _ = await self._execute("select_event_ids", (run_id, limit))
        return [str(r[0]) for r in rows]

    async def count_events(self, run_id: str) -> int:
        rows, _ = await self._execute("count_events", (run_id,))
        return int(rows[0][0])

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
