"""Run statuses on Cassandra: ``run_status`` by runId, and the index tables the listings walk
(``runs_by_state``, ``runs_by_job``, children by parent). Index rows hold keys only; a listing
reads the statuses and skips index rows that no longer match, so an index never shows a wrong
state."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any

from lineage_faust.domain.records import (
    RunStatus,
    run_time,
    status_to_row,
    status_values,
)
from lineage_faust.store.cassandra.codecs import (
    _FAR_FUTURE,
    _FAR_PAST,
    _STATUSES_PER_READ,
    ANY_STATE,
    _IndexKeys,
    _millis,
    _ms,
    _status_row,
    _utc,
    hour_bucket,
    month_bucket,
    walk_buckets,
)
from lineage_faust.store.cassandra.listings import CassandraListings
from lineage_faust.store.cursors import open_cursor, seal_cursor
from lineage_faust.store.errors import InvalidCursor
from lineage_faust.store.queries import (
    RunPage,
    RunQuery,
)


def _millis_or_none(at: datetime | None) -> int | None:
    # as milliseconds: converting datetimes was a fifth of the driver binding a status row
    return None if at is None else _millis(at)


def _status_values(status: RunStatus, before: RunStatus | None, known: bool) -> tuple:
    """The status row, an empty column left unset where the stored row has nothing there
    either: ``before``, or no row at all when the writer read the store (``known``) and
    found none. A null written is a tombstone Cassandra keeps, compacts and reads past."""
    from cassandra.query import UNSET_VALUE

    row = status_to_row(status, _millis_or_none)
    if not known or None not in row:
        return row
    stored = status_values(before) if before is not None else (None,) * len(row)
    pairs = zip(row, stored, strict=True)
    return tuple(UNSET_VALUE if v is None and s is None else v for v, s in pairs)


class CassandraRuns(CassandraListings):
    async def write_run_statuses(
        self, statuses: Sequence[RunStatus], previous: Mapping[str, RunStatus] | None = None
    ) -> None:
        known = previous is not None  # read by the writer: a run not in it has no row yet
        previous = previous or {}
        # Status and index rows in one round: a listing checks every index row against the
        # status row, so an index row that lands first is skipped until its status does
        # (a round of its own for the statuses cost ~50 ms per group at 1,000 events/s).
        writes: list[tuple[str, Hashable, Sequence[Any]]] = [
            ("insert_status", s.run_id, _status_values(s, previous.get(s.run_id), known))
            for s in statuses
        ]
        noted: list = []
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
        child, old_child = new.child, old.child if old is not None else None
        if child is not None and (child != old_child or self.retention_s):
            writes.append(("insert_child_index", ("child", child[0]), (*child, run_id)))
        if old_child is not None and old_child != child:
            writes.append(("delete_child_index", ("child", old_child[0]), (*old_child, run_id)))

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
        # cursor: b"S" + paging state in children_by_start, or b"L" + paging state in
        # runs_by_parent (children written before version 6, in runId order)
        scope = f"children|{run_id}"
        raw = open_cursor(scope, cursor) if cursor else None
        if raw is not None and raw[:1] not in (b"S", b"L"):
            raise InvalidCursor("pagingState was not issued for this query")
        if raw is None or raw[:1] == b"S":
            state = raw[1:] if raw else None
            runs, next_state = await self._children_page(
                "select_child_index", run_id, limit, state, by_start=True
            )
            if runs or raw is not None or next_state is not None:
                return RunPage(runs, seal_cursor(scope, b"S" + next_state) if next_state else None)
        runs, next_state = await self._children_page(
            "select_parent_index", run_id, limit, raw[1:] if raw else None, by_start=False
        )
        return RunPage(runs, seal_cursor(scope, b"L" + next_state) if next_state else None)

    async def _children_page(
        self, statement: str, run_id: str, limit: int, state: bytes | None, *, by_start: bool
    ) -> tuple[list[RunStatus], bytes | None]:
        rows, next_state = await self._execute(
            statement, (run_id,), fetch_size=limit, paging_state=state
        )
        keys = [(r[0], r[1]) if by_start else (None, r[0]) for r in rows]
        statuses = await self.get_run_statuses([k for _, k in keys])
        # keys only: the status row decides (a child that moved is skipped)
        runs = [
            status
            for at, key in keys
            if (status := statuses.get(key)) is not None
            and status.parent_run_id == run_id
            and (at is None or _ms(run_time(status)) == _utc(at))
        ]
        if next_state is not None and len(rows) >= limit:
            ahead, _ = await self._execute(
                statement, (run_id,), fetch_size=1, paging_state=next_state
            )
            if not ahead:
                next_state = None
        return runs, next_state
