"""Backpressure: the worker stops fetching the events topic while track_runs trails ingest, and
what it pauses resumes exactly where it stopped (nothing skipped, nothing read twice)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from bench.memory import small_run
from lineage_faust.backpressure import should_hold
from lineage_faust.broker import free_port
from lineage_faust.topics import ensure_topics

from .helpers import Stack, wait_until


@pytest.mark.parametrize(
    ("lag", "held", "expected"),
    [
        (0, False, False),
        (64, False, False),  # at the threshold: still fetching
        (65, False, True),  # above: paused
        (40, True, True),  # paused, above half: stays paused
        (33, True, True),
        (32, True, False),  # half or less: resumed
        (0, True, False),
    ],
)
def test_should_hold_pauses_above_the_threshold_and_resumes_at_half(
    lag: int, held: bool, expected: bool
) -> None:
    assert should_hold(lag, held, 64) is expected


def metric(text: str, name: str, labels: str = "") -> float:
    return sum(
        float(value)
        for found, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M)
        if labels in found
    )


async def produce_backlog(bootstrap: str, topic: str, runs: int) -> None:
    await ensure_topics(bootstrap, {topic: 4})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        futures = [
            await producer.send(topic, value, key=f"run:bench/job_{i % 50}".encode())
            for i in range(runs)
            for value in small_run(i, start + timedelta(seconds=i))
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.mark.integration
def test_a_backlog_is_paused_and_resumed_without_losing_or_repeating_an_event(
    stack: Stack,
) -> None:
    runs = 12_000
    asyncio.run(produce_backlog(stack.bootstrap, stack.topic, runs))
    port = free_port()
    # a tiny allowance: the worker pauses and resumes the events topic many times
    stack.extra_env.update(LINEAGE_WORKER_PORT=str(port), LINEAGE_MAX_UPDATES_LAG="2")
    worker = stack.spawn("worker")
    url = f"http://127.0.0.1:{port}/metrics"

    def finished() -> int:
        if not stack.db_path.exists():
            return 0
        with sqlite3.connect(stack.db_path) as db:
            sql = "SELECT count(*) FROM run_status WHERE state = 'COMPLETE'"
            return db.execute(sql).fetchone()[0]

    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        wait_until(lambda: finished() == runs, 180, "every run COMPLETE", interval_s=0.3)
        text = httpx.get(url, timeout=5).text
        # paused while track_runs trailed, and resumed (or the runs would not have finished)
        assert metric(text, "lineage_worker_ingest_held_back_seconds_total") > 0
        # every event read once: a pause neither skipped nor repeated one
        assert metric(text, "lineage_worker_events_consumed_total") == 2 * runs
        assert metric(text, "lineage_worker_offset_gaps_total") == 0
        assert metric(text, "lineage_worker_events_deduplicated_total") == 0
        with sqlite3.connect(stack.db_path) as db:
            assert db.execute("SELECT count(*) FROM events_by_run").fetchone()[0] == 2 * runs
        assert "could not pause or resume" not in worker.log()
    finally:
        assert worker.stop() == 0
