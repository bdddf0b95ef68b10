"""The store unavailable for a while (SQLite file locked by another process): the worker waits,
retries with backoff, reports itself unhealthy, and resumes by itself; nothing is lost."""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest

from lineage_faust.kafka.embedded import free_port
from tests.support.helpers import SAMPLES, Stack, wait_until

pytestmark = pytest.mark.integration


def count(stack: Stack) -> int:
    with sqlite3.connect(f"file:{stack.db_path}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM events_by_run").fetchone()[0]


def test_worker_waits_out_a_locked_store(stack: Stack) -> None:
    stack.extra_env["LINEAGE_LOG_LEVEL"] = "INFO"
    health_port = free_port()
    stack.extra_env["LINEAGE_WORKER_PORT"] = str(health_port)
    health_url = f"http://127.0.0.1:{health_port}/health"
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        assert httpx.get(health_url, timeout=5).status_code == 200
        locker = sqlite3.connect(stack.db_path, isolation_level=None, timeout=30)
        locker.execute("BEGIN EXCLUSIVE")  # no one else may read or write now
        try:
            assert stack.send(SAMPLES).returncode == 0
            wait_until(
                lambda: "failed" in worker.log() and "retrying" in worker.log(),
                60,
                "the worker to report the store failure and retry",
            )
            time.sleep(2)
            assert worker.alive(), "the worker must wait, not crash"
            unhealthy = httpx.get(health_url, timeout=5)
            assert unhealthy.status_code == 503
            body = unhealthy.json()
            assert body["status"] == "unhealthy"
            assert "store batch" in [f["what"] for f in body["failing"]]
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        wait_until(lambda: count(stack) == 28, 60, "every event stored after the outage")
        wait_until(lambda: "succeeded after" in worker.log(), 30, "recovery to be logged")
        wait_until(lambda: httpx.get(health_url, timeout=5).status_code == 200, 30, "healthy again")
        # everything accounted for, run states and alerts right
        acct = httpx.get(health_url, timeout=5).json()["accounting"]
        assert acct == {
            "consumed": 28,
            "stored": 28,
            "deduplicated": 0,
            "deadLettered": 0,
            "balanced": True,
        }
        with sqlite3.connect(f"file:{stack.db_path}?mode=ro", uri=True, timeout=30) as conn:
            wait_until(
                lambda: (
                    conn.execute("SELECT count(*) FROM alerts WHERE published = 1").fetchone()[0]
                    == 3
                ),
                30,
                "the samples' three alerts",
            )
            states = dict(conn.execute("SELECT state, count(*) FROM run_status GROUP BY 1"))
        assert states == {"COMPLETE": 11, "FAIL": 3}
    finally:
        worker.stop()
