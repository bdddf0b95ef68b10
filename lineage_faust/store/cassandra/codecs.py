"""The Cassandra store's values: time buckets of bounded partitions, millisecond times, the
rows read back, where a status is listed, and the statements of a bulk write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lineage_faust.domain.records import (
    RunStatus,
    StoredEvent,
    run_time,
    state_time,
    status_from_row,
)

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
_BATCH_BYTES = 4 * 1024  # as Cassandra counts a batch: each cell's value and _CELL_BYTES
_CELL_BYTES = 16  # a cell's timestamp, TTL and deletion time (Cell.dataSize)
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
    child: tuple[str, datetime] | None  # (parent run, run time): children by start

    @classmethod
    def of(cls, s: RunStatus) -> _IndexKeys:
        entered, started = _ms(state_time(s)), _ms(run_time(s))
        return cls(
            (s.state, hour_bucket(entered), entered),
            (ANY_STATE, hour_bucket(started), started),
            (s.namespace, s.job, month_bucket(started), started),
            (s.parent_run_id, started) if s.parent_run_id is not None else None,
        )
