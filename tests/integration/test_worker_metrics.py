"""The worker's Prometheus page: what it consumed, stored, deduplicated and dead-lettered,
its run states, store latency, consumer lag and the live table's native memory, after real
traffic through a real broker."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from bench.report import children
from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.domain.runstate import RunUpdate, fold
from lineage_faust.kafka.embedded import free_port
from tests.support.helpers import SAMPLES, Stack, samples, wait_until

pytestmark = pytest.mark.integration
LINES = [line for line in SAMPLES.read_bytes().splitlines() if line.strip()]


def final_states() -> Counter[str]:
    by_run: dict[str, list[RunUpdate]] = {}
    for line in LINES:
        event = parse_event(line, 1 << 20)
        assert isinstance(event, ValidEvent)
        by_run.setdefault(event.payload.run.runId, []).append(RunUpdate.from_event(event))
    return Counter(fold(updates).state for updates in by_run.values())


def test_worker_metrics_after_real_traffic(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    # a 40 s live-table retention: partitions are swept (and counted) every 10 s
    stack.extra_env.update(LINEAGE_WORKER_PORT=str(port), LINEAGE_RUN_RETENTION="40")
    url = f"http://127.0.0.1:{port}/metrics"
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"not json\n" + b'{"eventType": "START"}\n')
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        assert stack.send(SAMPLES, broken).returncode == 0
        assert stack.send(SAMPLES).returncode == 0  # every event redelivered once

        def consumed() -> float:
            text = httpx.get(url, timeout=5).text
            return samples(text, "lineage_worker_events_consumed_total").get("", 0)

        wait_until(lambda: consumed() == 2 * len(LINES) + 2, 60, "all messages consumed")
        states = final_states()
        text = wait_until(
            lambda: (
                (t := httpx.get(url, timeout=5).text)
                and sum(samples(t, "lineage_worker_live_runs").values()) == sum(states.values())
                and samples(t, "lineage_worker_events_deduplicated_total").get("") == len(LINES)
                and t
            ),
            60,
            "runs folded and counted",
        )
        response = httpx.get(url, timeout=5)
        assert response.headers["content-type"].startswith("text/plain")
        stored = samples(text, "lineage_worker_events_stored_total")
        assert stored == {'{kind="run"}': len(LINES), '{kind="non_run"}': 0}  # new ones only
        dead = samples(text, "lineage_worker_events_dead_lettered_total")
        assert dead == {'{reason="not_json"}': 1, '{reason="missing_field"}': 1}
        # the accounting: consumed = stored + deduplicated + dead-lettered
        total = samples(text, "lineage_worker_events_consumed_total")[""]
        deduplicated = samples(text, "lineage_worker_events_deduplicated_total")[""]
        assert total == sum(stored.values()) + deduplicated + sum(dead.values())
        live = samples(text, "lineage_worker_live_runs")
        assert {k[len('{state="') : -2]: int(v) for k, v in live.items() if v} == dict(states)
        changes = samples(text, "lineage_worker_run_state_changes_total")
        assert changes['{state="FAIL"}'] == states["FAIL"]
        writes = samples(text, "lineage_worker_store_write_seconds_count")
        assert writes['{operation="events"}'] >= 1 and writes['{operation="run_statuses"}'] >= 1
        lag = samples(text, "lineage_worker_consumer_lag")
        events_lag = [v for k, v in lag.items() if f'topic="{stack.topic}"' in k]
        assert events_lag and all(v == 0 for v in events_lag), lag
        # the live table's rocksdb databases, read from rocksdb: the runs sit in memtables
        native = samples(text, "lineage_worker_live_table_native_bytes")
        assert set(native) == {
            f'{{kind="{k}"}}' for k in ("memtables", "block_cache", "table_readers")
        }
        assert native['{kind="memtables"}'] > 0, native
        assert orjson.loads(httpx.get(url.replace("metrics", "health")).content)["status"] == "ok"
    finally:
        worker.stop()


def helper_of(pid: int) -> int | None:
    """The worker's triage helper (its spawned child that is not the resource tracker)."""
    for child in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:  # exited meanwhile
            continue
    return None


def test_a_worker_whose_triage_helper_dies_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    stack.extra_env.update(LINEAGE_WORKER_PORT=str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    burst = tmp_path / "burst.jsonl"
    burst.write_bytes(b"\n".join(LINES * 72) + b"\n")  # batches big enough for the helper
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        helper = wait_until(lambda: helper_of(worker.process.pid), 30, "triage helper")
        os.kill(helper, signal.SIGKILL)
        assert stack.send(burst).returncode == 0

        def metric(name: str) -> dict[str, float]:
            return samples(httpx.get(url, timeout=5).text, name)

        wait_until(
            lambda: metric("lineage_worker_events_consumed_total").get("") == 72 * len(LINES),
            60,
            "every message consumed",
        )
        assert metric("lineage_worker_events_stored_total")['{kind="run"}'] == len(LINES)
        assert metric("lineage_worker_triage_fallbacks_total").get('{reason="helper_died"}', 0) >= 1
        replacement = wait_until(lambda: helper_of(worker.process.pid), 30, "a new helper")
        assert replacement != helper
    finally:
        worker.stop()
