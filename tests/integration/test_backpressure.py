"""Backpressure: the worker stops fetching the events topic while track_runs trails ingest, and
what it pauses resumes exactly where it stopped (nothing skipped, nothing read twice)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bench.memory import produce
from bench.targets import sqlite_count as count
from lineage_faust.kafka.embedded import free_port
from lineage_faust.worker.backpressure import should_hold
from tests.support.helpers import Stack, samples, wait_until


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


@pytest.mark.integration
def test_a_backlog_is_paused_and_resumed_without_losing_or_repeating_an_event(
    stack: Stack,
) -> None:
    runs = 12_000
    asyncio.run(produce(stack.bootstrap, runs, stack.topic, partitions=4))
    port = free_port()
    # a tiny allowance: the worker pauses and resumes the events topic many times
    stack.extra_env.update(LINEAGE_WORKER_PORT=str(port), LINEAGE_MAX_UPDATES_LAG="2")
    worker = stack.spawn("worker")
    url = f"http://127.0.0.1:{port}/metrics"

    def metric(text: str, name: str) -> float:
        return sum(samples(text, name).values())

    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        complete = "SELECT count(*) FROM run_status WHERE state = 'COMPLETE'"
        wait_until(lambda: count(stack.db_path, complete) == runs, 180, "every run COMPLETE", 0.3)
        text = httpx.get(url, timeout=5).text
        # paused while track_runs trailed, and resumed (or the runs would not have finished)
        assert metric(text, "lineage_worker_ingest_held_back_seconds_total") > 0
        # every event read once: a pause neither skipped nor repeated one
        assert metric(text, "lineage_worker_events_consumed_total") == 2 * runs
        assert metric(text, "lineage_worker_offset_gaps_total") == 0
        assert metric(text, "lineage_worker_events_deduplicated_total") == 0
        assert count(stack.db_path, "SELECT count(*) FROM events_by_run") == 2 * runs
        assert "could not pause or resume" not in worker.log()
    finally:
        assert worker.stop() == 0
