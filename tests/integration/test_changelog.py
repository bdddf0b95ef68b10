"""The live table's changelog after a backlog: every run's last record is its final state.

track_runs writes a group's table changes and sends their changelog records itself, in
record batches per partition (lineage_faust/faust_patches/table_writes.py), instead of key
by key through Faust; a record lost or sent out of order would leave a run's older state last in the
changelog (or none at all), and a worker taking the partition over would recover that."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from faust.stores.rocksdb import Store as RocksDBStore
from rocksdict import AccessType, Rdict

from lineage_faust.kafka.topics import ensure_topics
from tests.support.helpers import Stack, wait_until

from .test_crash import Stream, produce

pytestmark = pytest.mark.integration
OFFSET_KEY = RocksDBStore.offset_key


async def last_records(
    bootstrap: str, topic: str, want: dict[str, tuple[str, int]]
) -> tuple[dict[str, tuple[str, int]], dict[int, int]]:
    """Each key's last changelog record, read from the start until they equal ``want`` or 60 s
    have passed (a deadline, not an idle time: a slow broker must not pass for a lost record);
    and each partition's last offset read."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    last: dict[str, tuple[str, int]] = {}
    ends: dict[int, int] = {}
    deadline = asyncio.get_running_loop().time() + 60
    try:
        while last != want and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    state = orjson.loads(record.value)
                    last[record.key.decode()] = (state["state"], state["event_count"])
                    ends[record.partition] = record.offset
    finally:
        await consumer.stop()
    return last, ends


def persisted_offsets(tables: Path) -> dict[int, int]:
    """The changelog offset each partition's rocksdb database says it holds everything up to
    (Faust's recovery reads the changelog from there on)."""
    found = {}
    for path in tables.glob("runs-*.db"):
        db = Rdict(str(path), access_type=AccessType.read_only())
        try:
            offset = db.get(OFFSET_KEY)
        finally:
            db.close()
        if offset is not None:
            found[int(path.name.removeprefix("runs-").removesuffix(".db"))] = int(offset)
    return found


def test_every_runs_last_changelog_record_is_its_final_state(stack: Stack) -> None:
    stream = Stream(copies=200, seed=5)  # 5,600 events (+560 re-sent), 2,800 runs
    # a backlog: track_runs folds large groups, thousands of table writes at a time
    asyncio.run(ensure_topics(stack.bootstrap, {stack.topic: int(stack.env["LINEAGE_PARTITIONS"])}))
    asyncio.run(produce(stack.bootstrap, stack.topic, stream.messages))
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 90, "worker ready")
        stream.wait_all_done(stack.db_path)
    finally:
        exit_code = worker.stop()
    # a clean stop sends what the worker still held (table_writes.py), a killed one would not
    assert exit_code == 0, worker.log()[-3000:]
    stream.check_store(stack.db_path)
    with sqlite3.connect(stack.db_path) as conn:
        final = {
            run_id: (state, count)
            for run_id, state, count in conn.execute(
                "SELECT runId, state, eventCount FROM run_status"
            )
        }
    changelog = f"{stack.env['LINEAGE_APP_ID']}-runs-changelog"
    last, ends = asyncio.run(last_records(stack.bootstrap, changelog, final))
    assert len(last) == len(final) == len(stream.per_run)
    assert {run for run in final if last.get(run) != final[run]} == set()
    # every record acknowledged before the stop was noted in rocksdb: a restart recovers
    # only what came after (none here), and never skips a record it does not hold
    assert persisted_offsets(stack.tmp / "data" / "faust" / "v1" / "tables") == ends
