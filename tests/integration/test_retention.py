"""Finished runs leave the live table after the retention window, and a late event for such a
run is folded against the run rebuilt from the store: right state, nothing counted twice."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter

import orjson
import pytest

from tests.support.helpers import SAMPLES, Stack, wait_until

pytestmark = pytest.mark.integration


def statuses(stack: Stack) -> dict[str, tuple[str, int]]:
    if not stack.db_path.exists():
        return {}
    with sqlite3.connect(stack.db_path) as conn:
        try:
            rows = conn.execute("SELECT runId, state, eventCount FROM run_status").fetchall()
        except sqlite3.OperationalError:
            return {}
    return {run_id: (state, count) for run_id, state, count in rows}


def evicted(log: str) -> int:
    return sum(int(n) for n in re.findall(r"evicted (\d+) finished runs", log))


def revived(log: str) -> int:
    counts = re.findall(r"runs_revived=(\d+)", log)
    return int(counts[-1]) if counts else 0


def test_finished_runs_leave_the_table_and_late_events_revive_them(stack: Stack) -> None:
    stack.extra_env["LINEAGE_RUN_RETENTION"] = "1"
    lines = SAMPLES.read_bytes().splitlines()
    per_run = Counter(orjson.loads(line)["run"]["runId"] for line in lines)
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        assert stack.send(SAMPLES).returncode == 0
        wait_until(lambda: len(statuses(stack)) == len(per_run), 60, "all runs stored")
        wait_until(lambda: evicted(worker.log()) == len(per_run), 60, "every run evicted")

        # A late redelivery of the whole file after eviction: the runs come back from the
        # store, nothing is counted twice and no finished run is reopened.
        assert stack.send(SAMPLES).returncode == 0
        wait_until(lambda: revived(worker.log()) >= len(per_run), 60, "runs revived from the store")
        wait_until(
            lambda: sum(c for _, c in statuses(stack).values()) == len(lines),
            30,
            "the redelivery to be folded",
        )
        final = statuses(stack)
        assert {run_id: count for run_id, (_, count) in final.items()} == dict(per_run)
        assert Counter(state for state, _ in final.values()) == {"COMPLETE": 11, "FAIL": 3}
    finally:
        worker.stop()
