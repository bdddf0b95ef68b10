"""Failure alerts that understand Airflow retries, stuck/overdue runs and webhooks, through a real
broker, real worker processes, a real webhook receiver over HTTP and the real SQLite store.

The shared Airflow samples hold a DAG (``ol_failing_retry``) whose task fails, is retried once and
fails again, so the DAG run fails: one retrying failure (recorded, not paged), two failures in one
incident: the task's final try pages, its DAG run's failure joins it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from lineage_faust.domain.identity import run_partition
from tests.support.helpers import SAMPLES, Stack, wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(failures_per_alert=2) as r:
        yield r


def stored_alerts(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            rows = conn.execute("SELECT alert, published FROM alerts ORDER BY raisedAt").fetchall()
        except sqlite3.OperationalError:
            return []
    return [{**orjson.loads(text), "_published": published} for text, published in rows]


def events_consumed(log: str) -> int:
    """The worker's last 'pipeline:' line (printed every 10 s, and once more at stop)."""
    counts = [int(part.split("=")[1]) for part in log.split() if part.startswith("consumed=")]
    return counts[-1] if counts else 0


async def read_topic(bootstrap: str, topic: str) -> list[dict]:
    return [orjson.loads(r.value) for r in await topic_records(bootstrap, topic)]


async def topic_records(bootstrap: str, topic: str) -> list:
    """Every record of every partition of ``topic``, from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            await consumer.force_metadata_update()  # a topic new to this client
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list = []
        while batch := await consumer.getmany(*tps, timeout_ms=1500):
            for records in batch.values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()


def test_failures_alert_once_with_retries_understood(stack: Stack, receiver: Receiver) -> None:
    stack.extra_env.update(LINEAGE_WEBHOOKS=receiver.url, LINEAGE_PUBLIC_URL="http://ops:8000")
    worker = stack.spawn("worker", tag="worker-1")
    wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
    assert stack.send(SAMPLES).returncode == 0

    alerts = wait_until(
        lambda: found if len(found := stored_alerts(stack.db_path)) >= 3 else None,
        60,
        "three alerts",
    )
    by_kind = Counter(a["kind"] for a in alerts)
    assert by_kind == {"retrying_failure": 1, "failed": 2}
    retrying = next(a for a in alerts if a["kind"] == "retrying_failure")
    assert retrying["tryNumber"] == 1 and retrying["paged"] is False
    task_fail = next(a for a in alerts if a["kind"] == "failed" and a["parentRunId"])
    dag_fail = next(a for a in alerts if a["kind"] == "failed" and not a["parentRunId"])
    assert task_fail["job"] == "ol_failing_retry.always_fails" and task_fail["tryNumber"] == 2
    assert task_fail["errorMessage"].startswith("intentional failure")
    assert task_fail["stackTrace"].startswith("Traceback")
    assert task_fail["rootRunId"] == dag_fail["runId"] == task_fail["parentRunId"]
    assert task_fail["runUrl"] == f"/api/v1/runs/{task_fail['runId']}"  # the API adds its URL
    assert task_fail["startedAt"] and task_fail["endedAt"] and task_fail["severity"] == "critical"
    # one page for the incident: the task's final try's when both failures are folded in one
    # group (its run ended first), else whichever of the two partitions was folded first
    page, joined = (task_fail, dag_fail) if task_fail["paged"] else (dag_fail, task_fail)
    assert page["paged"] and not joined["paged"] and joined["pagedBy"] == page["alertId"]
    assert dag_fail["incidentId"] == task_fail["incidentId"]
    paged = {page["alertId"]}
    # the receiver said 500 twice per alert: retried, then delivered exactly once each
    wait_until(lambda: set(receiver.accepted_ids()) == paged, 60, "webhooks delivered")
    sent = next(a for a in receiver.accepted if a["alertId"] == page["alertId"])
    assert sent["runUrl"] == f"http://ops:8000/api/v1/runs/{page['runId']}"
    wait_until(lambda: all(a["_published"] for a in stored_alerts(stack.db_path)), 30, "published")

    # the same events again, then a restart and the same events once more: nothing new
    assert stack.send(SAMPLES).returncode == 0
    lines = len(SAMPLES.read_bytes().splitlines())
    wait_until(lambda: events_consumed(worker.log()) >= 2 * lines, 30, "replay consumed")
    assert worker.stop() == 0
    restarted = stack.spawn("worker", tag="worker-2")
    try:
        wait_until(lambda: "Worker]: Ready" in restarted.log(), 60, "worker ready again")
        assert stack.send(SAMPLES).returncode == 0
        wait_until(lambda: events_consumed(restarted.log()) >= lines, 40, "second replay consumed")
    finally:
        assert restarted.stop() == 0
    assert len(stored_alerts(stack.db_path)) == 3
    assert sorted(receiver.accepted_ids()) == sorted(paged)
    assert all(n == 3 for n in receiver.tries.values())  # 2 x 500, then 200: nothing after
    on_topic = asyncio.run(read_topic(stack.bootstrap, stack.alerts_topic))
    assert sorted(a["alertId"] for a in on_topic) == sorted(a["alertId"] for a in alerts)
    for log in (worker.log(), restarted.log()):
        assert "were never delivered" not in log


def test_a_page_goes_out_once_from_the_worker_that_raised_it(stack: Stack) -> None:
    """The worker that raised a page sends it at once and its notify agent, reading it back
    from the alerts topic (the run's partition, this worker's), sends it no second time.
    Every alert on the topic names the deployment that raised it."""
    with Receiver() as receiver:
        stack.extra_env.update(LINEAGE_WEBHOOKS=receiver.url)
        worker = stack.spawn("worker")
        try:
            wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
            assert stack.send(SAMPLES).returncode == 0
            wait_until(lambda: receiver.accepted_ids(), 60, "the page")
            wait_until(
                lambda: (
                    len(alerts := stored_alerts(stack.db_path)) == 3
                    and all(a["_published"] for a in alerts)
                ),
                30,
                "every alert published",
            )
            time.sleep(2.0)  # time enough for the notify agent to send it again, if it would
        finally:
            assert worker.stop() == 0
        paged = [a["alertId"] for a in stored_alerts(stack.db_path) if a["paged"]]
        assert receiver.accepted_ids() == paged and receiver.tries[paged[0]] == 1
        records = asyncio.run(topic_records(stack.bootstrap, stack.alerts_topic))
        assert len(records) == 3
        app = f"{stack.name}-app".encode()
        for record in records:
            assert ("lineage.app", app) in list(record.headers)
            run_id = orjson.loads(record.value)["runId"]
            assert record.partition == run_partition(run_id, 4)


def ol_event(
    event_type: str, run_id: str, job: str, at: datetime, namespace: str = "alerts", **job_facets
) -> bytes:
    return orjson.dumps(
        {
            "eventType": event_type,
            "eventTime": at.isoformat(),
            "producer": "https://example.com/tests",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id},
            "job": {"namespace": namespace, "name": job, "facets": job_facets},
        }
    )


def test_overdue_and_stuck_runs_alert_once_and_recover(stack: Stack, tmp_path: Path) -> None:
    stack.extra_env.update(
        LINEAGE_ALERT_OVERDUE_FACTOR="3",
        LINEAGE_ALERT_OVERRIDES='{"idle": {"idle_s": 2}}',
        LINEAGE_SWEEP_INTERVAL="0.5",
    )
    now = datetime.now(UTC)
    history = []
    for i in range(3):  # three earlier runs of 'nightly', 2 s each: typical 2 s
        run_id = str(uuid.uuid4())
        started = now - timedelta(hours=3 - i)
        history += [
            ol_event("START", run_id, "nightly", started),
            ol_event("COMPLETE", run_id, "nightly", started + timedelta(seconds=2)),
        ]
    overdue_run, streaming_run, idle_run = (str(uuid.uuid4()) for _ in range(3))
    long_ago = now - timedelta(minutes=5)
    streaming = {"jobType": {"processingType": "STREAMING", "integration": "FLINK"}}
    first = tmp_path / "first.jsonl"
    first.write_bytes(
        b"\n".join(
            [
                *history,
                ol_event("START", overdue_run, "nightly", long_ago),  # 5 min >> 3 x 2 s
                ol_event("START", streaming_run, "nightly", long_ago, **streaming),
                ol_event("START", idle_run, "quiet", now, namespace="idle"),
            ]
        )
    )
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        assert stack.send(first).returncode == 0

        def kinds() -> Counter[tuple[str, str]]:
            return Counter((a["runId"], a["kind"]) for a in stored_alerts(stack.db_path))

        wait_until(lambda: (overdue_run, "overdue") in kinds(), 30, "the overdue alert")
        wait_until(lambda: (idle_run, "stuck") in kinds(), 30, "the stuck alert")
        done = tmp_path / "done.jsonl"
        done.write_bytes(ol_event("COMPLETE", overdue_run, "nightly", datetime.now(UTC)))
        assert stack.send(done).returncode == 0
        wait_until(lambda: (overdue_run, "recovered") in kinds(), 30, "the recovery notice")
        time.sleep(3)  # several more sweeps: nothing is raised twice
        assert kinds() == {
            (overdue_run, "overdue"): 1,
            (overdue_run, "recovered"): 1,
            (overdue_run, "resolved"): 1,  # its incident resolved by itself
            (idle_run, "stuck"): 1,
        }  # and nothing for the streaming run, which has no end
    finally:
        assert worker.stop() == 0
