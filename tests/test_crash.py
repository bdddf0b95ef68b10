"""SIGKILL the worker in the middle of a stream, restart it: nothing lost, nothing doubled.

Real broker, real worker processes, real SQLite. The stream is copies of the Airflow samples
with fresh run ids (plus redelivered duplicates), produced before the worker starts, so the
kill lands while a backlog is being worked through.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from lineage_faust.keying import message_key
from lineage_faust.synth import fresh_copies, load_lines

from .helpers import Stack, wait_until

pytestmark = pytest.mark.integration
COPIES = 400  # x 28 events = 11,200 distinct events, 5,600 runs


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=message_key(orjson.loads(v))) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def db_count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:  # schema not created yet
            return 0


def test_sigkill_mid_stream_loses_and_doubles_nothing(stack: Stack) -> None:
    copies = list(fresh_copies(load_lines(), COPIES, seed=7))
    events = [line for copy in copies for line in copy]
    redelivered = events[::10]  # a producer retrying: the same bytes again
    expected_per_run = Counter(orjson.loads(v)["run"]["runId"] for v in events)
    expected_failed = 3 * COPIES

    worker = stack.spawn("worker", tag="worker-1")
    # Topic creation happens at worker start; produce once it exists.
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    asyncio.run(produce(stack.bootstrap, stack.topic, events + redelivered))

    stored = "SELECT count(*) FROM events_by_run"
    wait_until(lambda: db_count(stack.db_path, stored) >= len(events) // 5, 120, "first events")
    worker.kill()
    at_kill = db_count(stack.db_path, stored)
    assert at_kill < len(events), "the kill came too late to test anything"

    restarted = stack.spawn("worker", tag="worker-2")
    try:
        wait_until(
            lambda: db_count(stack.db_path, stored) == len(events),
            180,
            "every event stored after restart",
            interval_s=0.5,
        )
        statuses = "SELECT count(*) FROM run_status WHERE state IN ('COMPLETE', 'FAIL')"
        wait_until(
            lambda: db_count(stack.db_path, statuses) == len(expected_per_run),
            120,
            "every run finished",
            interval_s=0.5,
        )
    finally:
        restarted.stop()

    with sqlite3.connect(stack.db_path) as conn:
        per_run = dict(conn.execute("SELECT runId, count(*) FROM events_by_run GROUP BY runId"))
        assert per_run == dict(expected_per_run)  # nothing lost, nothing doubled
        counts = dict(conn.execute("SELECT runId, eventCount FROM run_status"))
        assert counts == dict(expected_per_run)  # the fold did not count a redelivery twice
        failed = conn.execute("SELECT count(*) FROM run_status WHERE state='FAIL'").fetchone()[0]
        assert failed == expected_failed
    # Faust delivered every offset to the agents (see lineage_faust/recovery.py)
    for log in (worker.log(), restarted.log()):
        assert "were never delivered" not in log
    print(f"killed at {at_kill}/{len(events)} stored events")
