"""Cells as Cassandra keeps and counts them. A null written is a tombstone cell that compaction
and every read of the row walk past (a started run's status has 9 empty columns of 19): the
store writes a null only where the stored row has a value to clear, counted with the node's
own query trace. A batch spanning partitions is counted cell by cell against the node's
warning threshold: the store's batches stay under it, checked on the node's warnings."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from lineage_faust.domain.records import RunStatus, status_from_state
from lineage_faust.domain.runstate import RunUpdate, fold
from lineage_faust.store import open_store
from lineage_faust.store.cassandra.store import CassandraStore
from tests.support.cassandra import cassandra_url, drop_keyspace, needs_cassandra, new_keyspace

pytestmark = needs_cassandra

READ = re.compile(r"Read (\d+) live rows and (\d+) tombstone cells")


@pytest.fixture
async def store() -> AsyncIterator[CassandraStore]:
    keyspace = new_keyspace()
    opened = open_store(cassandra_url(keyspace))
    assert isinstance(opened, CassandraStore)
    await opened.open()
    yield opened
    await opened.close()
    await asyncio.to_thread(drop_keyspace, keyspace)


def started(run_id: str) -> RunStatus:
    update = RunUpdate(
        event_id="e1",
        run_id=run_id,
        event_type="START",
        ticks=1_700_000_000 * 10_000_000,
        namespace="ns",
        job="job",
        parent_run_id="dag",
        root_run_id="dag",
    )
    return status_from_state(fold([update]), datetime.now(UTC).replace(microsecond=0))


async def tombstones(store: CassandraStore, run_id: str) -> int:
    """Tombstone cells the replicas read for the run's status row, from the query trace."""
    from cassandra.query import SimpleStatement

    statement = SimpleStatement(
        f"SELECT * FROM {store.options.keyspace}.run_status WHERE runId = %s"
    )
    session = store._session
    assert session is not None
    result = await asyncio.to_thread(session.execute, statement, (run_id,), trace=True)
    trace = await asyncio.to_thread(result.get_query_trace)
    reads = [READ.search(e.description) for e in trace.events]
    counts = [(int(m[1]), int(m[2])) for m in reads if m]
    assert counts and all(live == 1 for live, _ in counts), counts
    return max(dead for _, dead in counts)


async def test_empty_columns_of_a_new_run_are_left_unset(store: CassandraStore) -> None:
    status = started("new")
    assert sum(v is None for v in dataclasses.astuple(status)) >= 5
    await store.write_run_statuses([status], {})  # read by the writer: not stored yet
    assert await store.get_run_status("new") == status
    assert await tombstones(store, "new") == 0


async def test_a_column_emptied_since_the_stored_row_is_cleared(store: CassandraStore) -> None:
    failed = dataclasses.replace(started("retried"), state="FAILED", error_message="boom")
    await store.write_run_statuses([failed], {})
    again = started("retried")  # the stored row has an error message, this one none
    await store.write_run_statuses([again], {"retried": failed})
    assert await store.get_run_status("retried") == again
    assert await tombstones(store, "retried") == 1  # the error message: cleared, nothing else


async def test_without_the_stored_row_every_empty_column_is_written(
    store: CassandraStore,
) -> None:
    failed = dataclasses.replace(started("unknown"), state="FAILED", error_message="boom")
    await store.write_run_statuses([failed])
    again = started("unknown")
    await store.write_run_statuses([again])  # not read first: empty must overwrite
    assert await store.get_run_status("unknown") == again
    assert await tombstones(store, "unknown") == sum(v is None for v in dataclasses.astuple(again))


async def test_batches_of_full_rows_stay_under_the_batch_size_warning(
    store: CassandraStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Statuses with every column set, their text from a few bytes to past the size the
    store batches (1 KiB): Cassandra warns of a batch past 5 KiB as it counts it (each
    cell's value plus 16 bytes); the driver logs the warnings it returns."""
    base = dataclasses.replace(started("x"), state="FAILED", max_tries=3, try_number=1)
    full = [
        dataclasses.replace(
            base,
            run_id=f"run-{i:04d}",
            error_message="e" * (i * 7 % 1300),
            nominal_start_time="2026-01-01T00:00:00Z",
            end_time=base.start_time,
            duration_ms=1,
            processing_type="BATCH",
        )
        for i in range(400)
    ]
    assert all(None not in dataclasses.astuple(s) for s in full)
    with caplog.at_level(logging.WARNING, logger="cassandra"):
        await store.write_run_statuses(full, {})
    warned = [r.getMessage() for r in caplog.records if "Batch for" in r.getMessage()]
    assert not warned, warned[:2]
    assert len(await store.get_run_statuses([s.run_id for s in full])) == len(full)
