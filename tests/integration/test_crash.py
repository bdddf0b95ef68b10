"""Crashes lose nothing and double nothing: SIGKILL a worker three times during a 20,000-event
stream; kill one of two workers and let the other take over its partitions.

Real broker, real worker processes, real SQLite. The streams are copies of the Airflow samples
with fresh run ids (plus redelivered duplicates), produced while the workers work (they keep up
with one producer), so every kill lands mid-stream. Each scenario ends with the accounting
identity, every run's state and event count, and every alert (once) checked.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from lineage_faust.domain.keying import message_key
from lineage_faust.kafka.embedded import free_port
from lineage_faust.samples import fresh_copies, load_lines
from lineage_faust.store import open_store
from lineage_faust.store.queries import AlertQuery
from tests.integration.test_alerts import ol_event
from tests.support.cassandra import STORE_KINDS, drop_keyspace, use_store
from tests.support.helpers import Proc, Stack, wait_until
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration
SAMPLE_EVENTS = len(load_lines())  # 28: 14 runs, 3 of them FAIL, 3 alerts


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=message_key(orjson.loads(v))) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def start_producing(stack: Stack, values: list[bytes]) -> Future:
    """Produce ``values`` in a thread, so the test can act while they are still arriving;
    the future's ``result()`` waits for the end and raises what the producer raised."""
    return ThreadPoolExecutor(1).submit(asyncio.run, produce(stack.bootstrap, stack.topic, values))


def db_count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:  # schema not created yet
            return 0


STORED = "SELECT count(*) FROM events_by_run"
FINISHED = "SELECT count(*) FROM run_status WHERE state IN ('COMPLETE', 'FAIL')"


class Stream:
    """``copies`` days of the sample DAGs, every 10th message sent twice (a retrying producer)."""

    def __init__(self, copies: int, seed: int) -> None:
        self.copies = copies
        self.events = [line for copy in fresh_copies(load_lines(), copies, seed) for line in copy]
        self.messages = self.events + self.events[::10]
        self.per_run = Counter(orjson.loads(v)["run"]["runId"] for v in self.events)

    def check_store(self, db: Path) -> None:
        with sqlite3.connect(db) as conn:
            per_run = dict(conn.execute("SELECT runId, count(*) FROM events_by_run GROUP BY runId"))
            assert per_run == dict(self.per_run)  # nothing lost, nothing doubled
            counts = dict(conn.execute("SELECT runId, eventCount FROM run_status"))
            assert counts == dict(self.per_run)  # the fold did not count a redelivery twice
            states = Counter(
                dict(conn.execute("SELECT state, count(*) FROM run_status GROUP BY 1"))
            )
            assert states == {"COMPLETE": 11 * self.copies, "FAIL": 3 * self.copies}
            kinds = Counter(
                dict(
                    conn.execute(
                        "SELECT json_extract(alert, '$.kind'), count(*) FROM alerts GROUP BY 1"
                    )
                )
            )
            assert kinds == {"failed": 2 * self.copies, "retrying_failure": self.copies}
            unpublished = conn.execute("SELECT count(*) FROM alerts WHERE published = 0")
            assert unpublished.fetchone()[0] == 0

    def wait_all_done(self, db: Path) -> None:
        self.wait_all_done_with(db)

    def wait_all_done_with(
        self, db: Path, extra_runs: int = 0, extra_events: int = 0, extra_alerts: int | None = None
    ) -> None:
        """Every event stored, every run finished, every alert published; ``extra_*``: more
        (failed) runs sent beside the stream, one alert each unless told."""
        events, runs = len(self.events) + extra_events, len(self.per_run) + extra_runs
        alerts = 3 * self.copies + (extra_runs if extra_alerts is None else extra_alerts)
        wait_until(lambda: db_count(db, STORED) == events, 240, "every event stored", 0.5)
        wait_until(lambda: db_count(db, FINISHED) == runs, 120, "every run finished", 0.5)
        wait_until(
            lambda: db_count(db, "SELECT count(*) FROM alerts WHERE published = 1") == alerts,
            60,
            "every alert published",
            0.5,
        )


def accounting(port: int) -> dict | None:
    """The worker's own accounting (its /health), or None while it is not serving."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["accounting"]
    except httpx.HTTPError:
        return None


def assert_every_offset_delivered(*workers: Proc) -> None:
    for worker in workers:  # see lineage_faust/faust_patches/recovery.py
        assert "were never delivered" not in worker.log(), worker.name


def test_sigkill_three_times_mid_stream_loses_and_doubles_nothing(stack: Stack) -> None:
    stream = Stream(copies=715, seed=7)  # 20,020 distinct events, 10,010 runs
    port = free_port()
    stack.extra_env["LINEAGE_WORKER_PORT"] = str(port)
    rng = random.Random(11)
    workers = [stack.spawn("worker", tag="worker-0")]
    # Topic creation happens at worker start; produce once it exists.
    wait_until(lambda: "Worker]: Ready" in workers[0].log(), 60, "worker ready")
    producing = start_producing(stack, stream.messages)
    kills = []
    for i, share in enumerate((0.15, 0.4, 0.65)):
        target = int(len(stream.events) * (share + rng.uniform(0, 0.1)))
        wait_until(lambda t=target: db_count(stack.db_path, STORED) >= t, 180, f"{target} stored")
        workers[-1].kill()
        kills.append(db_count(stack.db_path, STORED))
        workers.append(stack.spawn("worker", tag=f"worker-{i + 1}"))
    producing.result()
    assert kills[-1] < len(stream.events), "the last kill came too late to test anything"
    try:
        stream.wait_all_done(stack.db_path)
        last = wait_until(lambda: accounting(port), 30, "the last worker's accounting")
    finally:
        workers[-1].stop()
    stream.check_store(stack.db_path)
    # the last worker re-read what the killed one had not committed: stored or deduplicated
    assert last["balanced"] and last["consumed"] > 0, last
    assert_every_offset_delivered(*workers)
    print(f"killed at {kills} of {len(stream.events)} stored events; last worker: {last}")


def test_one_of_two_workers_killed_the_other_takes_over(stack: Stack) -> None:
    stream = Stream(copies=500, seed=8)  # 14,000 events
    ports = [free_port(), free_port()]
    shared_db = stack.tmp / "shared" / "lineage.db"
    stack.extra_env["LINEAGE_STORE"] = f"sqlite:///{shared_db}"

    def spawn(i: int) -> Proc:
        # each worker its own table state (rocksdb) and web port; one store, one group
        stack.extra_env.update(
            LINEAGE_DATA_DIR=str(stack.tmp / f"data-{i}"), LINEAGE_WORKER_PORT=str(ports[i])
        )
        return stack.spawn("worker", tag=f"worker-{i}")

    survivor, victim = spawn(0), spawn(1)
    for w in (survivor, victim):
        wait_until(lambda w=w: "Worker]: Ready" in w.log(), 90, f"{w.name} ready")
    wait_until(
        lambda: accounting(ports[0]) is not None and accounting(ports[1]) is not None,
        30,
        "both workers serving",
    )
    producing = start_producing(stack, stream.messages)
    wait_until(lambda: (accounting(ports[1]) or {}).get("consumed", 0) > 500, 120, "victim at work")
    victim.kill()
    at_kill = db_count(shared_db, STORED)
    still_producing = not producing.done()
    producing.result()
    assert still_producing and at_kill < len(stream.events), "the kill came too late to test"
    try:
        stream.wait_all_done(shared_db)
        after = wait_until(lambda: accounting(ports[0]), 30, "the survivor's accounting")
    finally:
        survivor.stop()
    stream.check_store(shared_db)  # the victim's runs: states rebuilt from the changelog
    assert after["balanced"], after
    assert_every_offset_delivered(survivor, victim)
    print(f"victim killed at {at_kill} of {len(stream.events)} stored; survivor: {after}")


def test_a_worker_told_to_stop_mid_backlog_stops_and_loses_nothing(stack: Stack) -> None:
    """SIGTERM with a backlog: the worker stops promptly (it used to wait forever for the
    acknowledgement of events its stopped agents would never finish) and the next worker
    stores the rest, nothing lost, nothing doubled."""
    stream = Stream(copies=1000, seed=9)  # 28,000 events
    first = stack.spawn("worker", tag="worker-0")
    wait_until(lambda: "Worker]: Ready" in first.log(), 60, "worker ready")
    producing = start_producing(stack, stream.messages)
    target = len(stream.events) // 10
    wait_until(lambda: db_count(stack.db_path, STORED) >= target, 180, f"{target} stored")
    started = time.monotonic()
    assert first.stop(timeout_s=30) == 0
    stopped_after = time.monotonic() - started
    assert stopped_after < 30, f"not stopped after {stopped_after:.0f}s"
    assert db_count(stack.db_path, STORED) < len(stream.events), "stopped too late to test"
    producing.result()
    second = stack.spawn("worker", tag="worker-1")
    try:
        stream.wait_all_done(stack.db_path)
    finally:
        second.stop()
    stream.check_store(stack.db_path)
    assert_every_offset_delivered(first, second)


async def store_view(url: str, run_ids: list[str]) -> tuple[dict[str, int], Counter, Counter]:
    """Through the store interface (any store): events per run, states, and alerts by kind
    with how many are published."""
    store = open_store(url)
    await store.open()
    try:
        counts = {run_id: await store.count_events(run_id) for run_id in run_ids}
        statuses = await store.get_run_statuses(run_ids)
        alerts, cursor = [], None
        while True:
            page = await store.list_alerts(AlertQuery(), 500, cursor)
            alerts += page.alerts
            if not (cursor := page.next_cursor):
                break
        # the outbox: recording an alert again changes nothing and returns it while unpublished
        pending = await store.record_alerts(alerts)
        kinds = Counter(a.kind for a in alerts)
        return (
            counts,
            Counter(s.state for s in statuses.values()),
            kinds + Counter({"unpublished": len(pending)}),
        )
    finally:
        await store.close()


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_the_accounting_is_exact_across_a_sigkill(stack: Stack, store_kind: str) -> None:
    """The next worker counts what the killed one had stored but not committed as
    deduplicated: its `stored` is exactly what the store did not have when it started."""
    stream = Stream(copies=150, seed=3)  # 4,200 distinct events, 2,100 runs, 420 resent
    url, keyspace = use_store(store_kind, stack.db_path, stack.extra_env)
    run_ids = list(stream.per_run)
    port = free_port()
    stack.extra_env["LINEAGE_WORKER_PORT"] = str(port)
    first = stack.spawn("worker", tag="worker-0")
    try:
        wait_until(lambda: "Worker]: Ready" in first.log(), 60, "worker ready")
        producing = start_producing(stack, stream.messages)

        def stored() -> float:
            return (accounting(port) or {}).get("stored", 0)

        wait_until(lambda: stored() >= len(stream.events) * 0.4, 120, "40 % stored", 0.2)
        first.kill()
        time.sleep(2)  # its triage helper sees it gone and stops writing
        before = sum(asyncio.run(store_view(url, run_ids))[0].values())
        last = stack.spawn("worker", tag="worker-1")
        producing.result()
        assert before < len(stream.events), "the kill came too late to test anything"

        def all_stored() -> bool:
            return sum(asyncio.run(store_view(url, run_ids))[0].values()) == len(stream.events)

        wait_until(all_stored, 180, "every event stored", 2)
        wait_until(
            lambda: (a := accounting(port)) and a["stored"] + before >= len(stream.events),
            30,
            "the last worker's accounting to catch up",
            0.5,
        )
        wait_until(
            lambda: asyncio.run(store_view(url, run_ids))[2]["unpublished"] == 0,
            60,
            "every alert published",
            1,
        )
        counts, states, alerts = asyncio.run(store_view(url, run_ids))
        acct = accounting(port)
    finally:
        for worker in stack.spawned:
            worker.stop()
        if keyspace:
            drop_keyspace(keyspace)
    assert counts == dict(stream.per_run)  # nothing lost, nothing doubled
    assert states == {"COMPLETE": 11 * stream.copies, "FAIL": 3 * stream.copies}
    assert {k: v for k, v in alerts.items() if k != "unpublished"} == {
        "failed": 2 * stream.copies,
        "retrying_failure": stream.copies,
    }
    assert acct["balanced"], acct
    assert acct["stored"] == len(stream.events) - before, (acct, before)
    assert_every_offset_delivered(first, last)


async def run_ids_on_topic(bootstrap: str, topic: str) -> set[str]:
    """Every run id the topic holds, read from its start to its end (no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: set[str] = set()
        while True:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not behind:
                return found
            for records in (await consumer.getmany(*behind, timeout_ms=1000)).values():
                found.update(orjson.loads(r.value)["run"]["runId"] for r in records)
    finally:
        await consumer.stop()


async def fail_steadily(bootstrap: str, topic: str, runs: int, every_s: float) -> dict[str, float]:
    """``runs`` runs of jobs of their own (each failure its own page), one started and failed
    every ``every_s``: when each was sent (perf_counter)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent: dict[str, float] = {}
    try:
        for _ in range(runs):
            run_id, at = str(uuid.uuid4()), datetime.now(UTC)
            job = f"rolling-{run_id[:8]}"
            for kind, when in (("START", at), ("FAIL", at + timedelta(milliseconds=5))):
                event = ol_event(kind, run_id, job, when, namespace="rolling")
                await producer.send_and_wait(topic, event, key=message_key(orjson.loads(event)))
            sent[run_id] = time.perf_counter()
            await asyncio.sleep(every_s)
    finally:
        await producer.stop()
    return sent


@pytest.mark.faults
def test_a_rolling_restart_of_two_workers_while_failures_page(stack: Stack) -> None:
    """Two workers, one group, one store, a webhook receiver. A backlog (8,400 events) and a
    failure every 100 ms arrive while each worker in turn is told to stop (SIGTERM) and is
    started again. Every event is stored once, every failure is paged once, and the longest
    a failure waited for its page across the restarts is reported. (A fault test: run with
    LINEAGE_FAULT_TESTS=1; see docs/guarantees.md for what it measures today.)"""
    stream = Stream(copies=300, seed=11)
    ports = [free_port(), free_port()]
    shared_db = stack.tmp / "shared" / "lineage.db"

    def spawn(i: int, tag: str) -> Proc:
        stack.extra_env.update(
            LINEAGE_DATA_DIR=str(stack.tmp / f"data-{i}"), LINEAGE_WORKER_PORT=str(ports[i])
        )
        return stack.spawn("worker", tag=tag)

    with Receiver() as receiver:
        stack.extra_env.update(
            LINEAGE_STORE=f"sqlite:///{shared_db}", LINEAGE_WEBHOOKS=receiver.url
        )
        workers = [spawn(0, "worker-a"), spawn(1, "worker-b")]
        for w in workers:
            wait_until(lambda w=w: "Worker]: Ready" in w.log(), 90, f"{w.name} ready")
        producing = start_producing(stack, stream.messages)
        failing = ThreadPoolExecutor(1).submit(
            asyncio.run, fail_steadily(stack.bootstrap, stack.topic, 250, 0.1)
        )
        restarts = []
        for i, tag in ((0, "worker-a2"), (1, "worker-b2")):
            time.sleep(4)
            started = time.perf_counter()
            assert workers[i].stop(timeout_s=60) == 0, workers[i].log()[-3000:]
            workers[i] = spawn(i, tag)
            wait_until(lambda i=i: "Worker]: Ready" in workers[i].log(), 90, f"{tag} ready")
            restarts.append((started, time.perf_counter()))
        sent = failing.result()
        producing.result()
        on_topic = asyncio.run(run_ids_on_topic(stack.bootstrap, stack.topic))
        assert set(sent) <= on_topic, f"the broker lost {len(set(sent) - on_topic)} runs"
        assert restarts[-1][1] < max(sent.values()), "the failures ended before the restarts"
        try:
            stream.wait_all_done_with(shared_db, extra_runs=len(sent), extra_events=2 * len(sent))
            wait_until(lambda: set(sent) <= set(receiver.arrived), 60, "every failure paged")
            time.sleep(2)  # anything sent twice would have arrived by now
        finally:
            for w in workers:
                w.stop()
    with sqlite3.connect(shared_db) as conn:
        per_run = dict(conn.execute("SELECT runId, count(*) FROM events_by_run GROUP BY runId"))
        states = dict(conn.execute("SELECT runId, state FROM run_status"))
        unpublished = conn.execute("SELECT count(*) FROM alerts WHERE published = 0").fetchone()
    assert per_run == {**stream.per_run, **dict.fromkeys(sent, 2)}  # none lost, none doubled
    assert all(states[run_id] == "FAIL" for run_id in sent) and unpublished[0] == 0
    rolling = [a["alertId"] for a in receiver.accepted if a["namespace"] == "rolling"]
    waits = sorted(receiver.arrived[run_id] - at for run_id, at in sent.items())
    during = [
        receiver.arrived[r] - at
        for r, at in sent.items()
        if any(begin - 1 <= at <= end + 5 for begin, end in restarts)
    ]
    twice = len(rolling) - len(set(rolling))
    print(
        f"pages: {len(sent)} failures, {len(set(rolling))} paged, {twice} sent twice; wait p50 "
        f"{waits[len(waits) // 2]:.3f} s, max {waits[-1]:.2f} s; around the restarts max "
        f"{max(during):.2f} s; restarts took {[round(e - b, 1) for b, e in restarts]} s"
    )
    assert len(set(rolling)) == len(sent) and twice == 0  # each failure paged, once
