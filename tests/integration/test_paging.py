"""Pages under trouble, through a real broker, real worker processes, real webhook receivers on
loopback sockets and the real SQLite store: a hung receiver delays neither a healthy one nor
run states; a deployment pages only for its own failures, and never for old ones; a worker
killed before its pages were delivered has them delivered by the next one."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from bench.receiver import HungReceiver
from lineage_faust.kafka.embedded import free_port
from tests.integration.test_alerts import ol_event, stored_alerts
from tests.support.helpers import Stack, run_cli, samples, wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration


def failing_runs(path: Path, n: int, namespace: str = "paging") -> list[str]:
    """``n`` root runs (each its own incident: each pages), started and failed, in a file."""
    now = datetime.now(UTC)
    run_ids = [str(uuid.uuid4()) for _ in range(n)]
    lines = []
    for run_id in run_ids:
        lines += [
            ol_event("START", run_id, f"job-{run_id[:8]}", now, namespace=namespace),
            ol_event(
                "FAIL", run_id, f"job-{run_id[:8]}", now + timedelta(seconds=1), namespace=namespace
            ),
        ]
    path.write_bytes(b"\n".join(lines))
    return run_ids


def stored_states(db: Path, run_ids: list[str]) -> dict[str, str]:
    if not db.exists():
        return {}
    marks = ",".join("?" * len(run_ids))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            rows = conn.execute(
                f"SELECT runId, state FROM run_status WHERE runId IN ({marks})", run_ids
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
    return dict(rows)


def metric(port: int, name: str) -> dict[str, float]:
    return samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text, name)


def test_a_hung_webhook_delays_neither_a_healthy_one_nor_run_states(
    stack: Stack, tmp_path: Path
) -> None:
    """Webhook 1 accepts connections and never answers (its timeout is a minute); webhook 2
    is healthy. Pages raised in many separate groups reach webhook 2 at once, run states
    never wait, and /metrics shows webhook 1's queue."""
    port = free_port()
    with HungReceiver() as hung, Receiver() as healthy:
        stack.extra_env.update(
            LINEAGE_WEBHOOKS=f"{hung.url},{healthy.url}",
            LINEAGE_WEBHOOK_TIMEOUT="60",
            LINEAGE_WEBHOOK_CONCURRENCY="2",
            LINEAGE_WORKER_PORT=str(port),
        )
        worker = stack.spawn("worker")
        try:
            wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
            run_ids: list[str] = []
            started = time.monotonic()
            for i in range(12):  # one file a time: separate ingest batches and state groups
                run_ids += failing_runs(tmp_path / f"fail-{i}.jsonl", 2)
                assert stack.send(tmp_path / f"fail-{i}.jsonl").returncode == 0
            wait_until(
                lambda: (
                    len(stored_states(stack.db_path, run_ids)) == len(run_ids)
                    and set(stored_states(stack.db_path, run_ids).values()) == {"FAIL"}
                ),
                30,
                "every run's state",
            )
            wait_until(lambda: len(healthy.accepted) == len(run_ids), 30, "the healthy pages")
            # a page waiting for the hung webhook would hold its group (and the next ones)
            # for the hung webhook's minute: all 24 came well within that
            assert time.monotonic() - started < 45
            assert {a["runId"] for a in healthy.accepted} == set(run_ids)
            queued = metric(port, "lineage_worker_webhook_queued")
            assert queued == {'{webhook="1"}': 24.0, '{webhook="2"}': 0.0}
            oldest = metric(port, "lineage_worker_webhook_oldest_waiting_seconds")
            assert oldest['{webhook="1"}'] > 0 and oldest['{webhook="2"}'] == 0
            assert hung.requests == 2  # its concurrency: the rest wait in its own queue
        finally:
            worker.stop()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, list]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in messages:
            await producer.send_and_wait(topic, value, key=b"k", headers=headers)
    finally:
        await producer.stop()


def old_alert(n: int, app: str | None, raised: datetime) -> tuple[bytes, list]:
    alert = {
        "alertId": f"old-{n}-{uuid.uuid4()}",
        "kind": "failed",
        "severity": "critical",
        "paged": True,
        "runId": str(uuid.uuid4()),
        "namespace": "elsewhere",
        "job": f"job-{n}",
        "state": "FAIL",
        "detail": "run ended FAIL",
        "raisedAt": raised.isoformat(),
    }
    return orjson.dumps(alert), [("lineage.app", app.encode())] if app else []


def test_a_new_deployment_pages_only_for_its_own_new_failures(stack: Stack, tmp_path: Path) -> None:
    """An alerts topic that other deployments used (their alerts, older ones without the
    deployment header) and an old page of this deployment: a new deployment reading it from
    its start sends only the page of its own new failure."""
    port = free_port()
    shared = f"{stack.name}.shared-alerts"
    app = f"{stack.name}-new"
    now = datetime.now(UTC)
    history = [old_alert(n, "other-deployment", now - timedelta(minutes=5)) for n in range(30)]
    history += [old_alert(n, None, now - timedelta(minutes=5)) for n in range(30, 40)]
    history.append(old_alert(40, app, now - timedelta(hours=2)))  # ours, past its max age
    with Receiver() as receiver:
        stack.extra_env.update(
            LINEAGE_WEBHOOKS=receiver.url,
            LINEAGE_ALERTS_TOPIC=shared,
            LINEAGE_APP_ID=app,
            LINEAGE_PAGE_MAX_AGE="1h",
            LINEAGE_WORKER_PORT=str(port),
        )
        # the topic exists before anything is produced to it or read from it
        assert run_cli(stack.env, "init-topics").returncode == 0
        asyncio.run(produce(stack.bootstrap, shared, history))
        worker = stack.spawn("worker")
        try:
            wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
            wait_until(
                lambda: sum(metric(port, "lineage_worker_foreign_alerts_total").values()) == 40,
                30,
                "the other deployments' alerts read and passed by",
            )
            [run_id] = failing_runs(tmp_path / "ours.jsonl", 1)
            assert stack.send(tmp_path / "ours.jsonl").returncode == 0
            wait_until(lambda: receiver.accepted, 30, "our page")
            time.sleep(2.0)  # time enough for anything else to arrive, if it would
            assert [a["runId"] for a in receiver.accepted] == [run_id]
            outcomes = metric(port, "lineage_worker_webhook_deliveries_total")
            assert outcomes == {
                '{outcome="expired",webhook="1"}': 1.0,
                '{outcome="delivered",webhook="1"}': 1.0,
            }
            assert "expired" in worker.log()
        finally:
            worker.stop()


def test_pages_a_killed_worker_had_not_delivered_are_delivered_by_the_next(
    stack: Stack, tmp_path: Path
) -> None:
    with Receiver(failures_per_alert=10**9) as receiver:  # refuses every page for now
        stack.extra_env.update(LINEAGE_WEBHOOKS=receiver.url)
        worker = stack.spawn("worker", tag="worker-1")
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        run_ids = failing_runs(tmp_path / "fail.jsonl", 5)
        assert stack.send(tmp_path / "fail.jsonl").returncode == 0
        wait_until(
            lambda: len(receiver.tries) == 5 and len(stored_alerts(stack.db_path)) == 5,
            30,
            "five pages raised and tried",
        )
        worker.kill()  # SIGKILL: nothing delivered, nothing acknowledged
        receiver.failures = 0  # the receiver is back
        restarted = stack.spawn("worker", tag="worker-2")
        try:
            wait_until(lambda: len(receiver.accepted) == 5, 60, "the pages delivered")
            time.sleep(2.0)
            assert sorted(a["runId"] for a in receiver.accepted) == sorted(run_ids)
        finally:
            assert restarted.stop() == 0


def test_a_page_in_flight_when_the_worker_is_told_to_stop_is_sent_once(
    stack: Stack, tmp_path: Path
) -> None:
    """SIGTERM while the receiver is still answering a page: the stopping worker lets it
    finish and acknowledges it before its last commit, so the next worker (a rolling
    restart) does not send it again."""
    with Receiver(answer_after_s=1.5) as receiver:
        stack.extra_env.update(LINEAGE_WEBHOOKS=receiver.url)
        worker = stack.spawn("worker", tag="worker-1")
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        [run_id] = failing_runs(tmp_path / "fail.jsonl", 1)
        assert stack.send(tmp_path / "fail.jsonl").returncode == 0
        wait_until(lambda: receiver.tries, 30, "the page at the receiver")
        assert worker.stop() == 0  # while the receiver is still answering
        restarted = stack.spawn("worker", tag="worker-2")
        try:
            wait_until(lambda: "Worker]: Ready" in restarted.log(), 60, "worker ready again")
            time.sleep(3.0)  # time enough for the notify agent to send it again, if it would
        finally:
            assert restarted.stop() == 0
        assert [a["runId"] for a in receiver.accepted] == [run_id]
        assert list(receiver.tries.values()) == [1]
