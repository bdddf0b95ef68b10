"""The live table's changelog after a backlog: every run's last record is its final state.

track_runs hands the changelog records to the producer itself as it writes the table
(lineage_faust/changelog.py), instead of leaving them to Faust's buffer; a record lost or
sent out of order would leave a run's older state last in the changelog (or none at all), and
a worker taking the partition over would recover that."""

from __future__ import annotations

import asyncio
import sqlite3

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from lineage_faust.topics import ensure_topics

from .helpers import Stack, wait_until
from .test_crash import Stream, produce

pytestmark = pytest.mark.integration


async def last_records(bootstrap: str, topic: str, want: dict[str, tuple[str, int]]) -> dict:
    """Each key's last changelog record, read from the start until they equal ``want`` or 60 s
    have passed (a deadline, not an idle time: a slow broker must not pass for a lost record)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    last: dict[str, tuple[str, int]] = {}
    deadline = asyncio.get_running_loop().time() + 60
    try:
        while last != want and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    state = orjson.loads(record.value)
                    last[record.key.decode()] = (state["state"], state["event_count"])
    finally:
        await consumer.stop()
    return last


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
    # a clean stop sends what the worker still held (changelog.py), a killed one would not
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
    last = asyncio.run(last_records(stack.bootstrap, changelog, final))
    assert len(last) == len(final) == len(stream.per_run)
    assert {run for run in final if last.get(run) != final[run]} == set()
