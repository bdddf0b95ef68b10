"""The store on Cassandra: the events and everything written with them (which were new is
read first, one call at a time, for exact accounting), run statuses with their index rows,
the alerts outbox (a lightweight transaction records each alert once), and the queries.
The connection, statements and bulk writes: ``session``; the driver's paging state is the
API's opaque cursor (sealed with a check, ``store.cursors``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from lineage_faust.domain.alerting import Alert
from lineage_faust.domain.datasets import DatasetIO
from lineage_faust.domain.records import (
    DeadLetter,
    NonRunEvent,
    RunStatus,
    StoredEvent,
    status_to_row,
)
from lineage_faust.store.cassandra.codecs import (
    _FAR_FUTURE,
    _FAR_PAST,
    _RUNS_PER_READ,
    _STATUSES_PER_READ,
    ANY_STATE,
    _event_row,
    _from_millis,
    _IndexKeys,
    _millis,
    _ms,
    _status_row,
    _utc,
    day_bucket,
    hour_bucket,
    month_bucket,
    walk_buckets,
)
from lineage_faust.store.cassandra.session import CassandraSession
from lineage_faust.store.cursors import open_cursor, seal_cursor
from lineage_faust.store.errors import InvalidCursor, StoreError, StoreRefused
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


class CassandraStore(CassandraSession, Store):
    def __repr__(self) -> str:
        return f"CassandraStore({','.join(self.options.hosts)}/{self.options.keyspace})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled unopened: a session and its threads belong to the process that opens it
        return (partial(CassandraStore, self.options, retention_s=self.retention_s), ())

    def for_helper(self) -> CassandraStore:
        # Cassandra takes writes from any number of processes: the triage helper writes each
        # batch's events, dead letters and dataset links itself, on a session of its own
        return CassandraStore(self.options, retention_s=self.retention_s)

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
