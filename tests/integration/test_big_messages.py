"""Nothing wedges the pipeline: messages far over every size limit, through `lineage-faust up`.

Big messages (2.5 MB garbage, a valid OpenLineage event with a 3 MB facet, 9 MB), keyless and
keyed, then ordinary runs: every run is stored within seconds, each big message is
dead-lettered exactly once (store and topic, cut to fit with its size and hash), and the
accounting holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from lineage_faust.kafka.embedded import free_port, wait_for_port
from lineage_faust.store import open_store
from tests.support.cassandra import (
    cassandra_env,
    cassandra_url,
    drop_keyspace,
    needs_cassandra,
    new_keyspace,
)
from tests.support.helpers import (
    EXTERNAL_KAFKA,
    Stack,
    clean_env,
    create_big_topic,
    run_cli,
    up_env,
    wait_until,
)

pytestmark = pytest.mark.integration

DLQ_LIMIT = 1_000_000  # LINEAGE_DLQ_MAX_MESSAGE_BYTES' default


def ol_event(run_id: str, event_type: str, *, job: str = "ordinary", facet: str = "") -> bytes:
    run: dict = {"runId": run_id}
    if facet:
        run["facets"] = {"huge": {"_producer": "test", "_schemaURL": "x", "plan": facet}}
    return orjson.dumps(
        {
            "eventType": event_type,
            "eventTime": "2026-11-30T10:00:00.000Z",
            "producer": "https://example.com/big-messages-test",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": run,
            "job": {"namespace": "big", "name": job},
        }
    )


def big_messages() -> list[tuple[bytes | None, bytes]]:
    garbage = os.urandom(2_500_000)
    huge = ol_event(str(uuid.uuid4()), "START", job="spark", facet="x" * 3_000_000)
    nine = b"{" + b'"pad": "' + b"y" * 9_000_000 + b'"}'
    return [
        (None, garbage),
        (b"run:big/garbage", garbage[::-1]),
        (b"run:big/spark", huge),
        (None, huge[:-1] + b" }"),  # valid too, other bytes
        (None, nine),
        (b"run:big/nine", nine[::-1]),
    ]


async def produce(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """(partition, offset) of each message."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=32 * 1024 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in messages]
        return [((m := await f).partition, m.offset) for f in sent]
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, until: int, timeout_s: float = 30) -> list:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_bytes=64 * 1024 * 1024
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found: list = []
        deadline = time.monotonic() + timeout_s
        while len(found) < until and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            found += batch.get(tp, [])
        # anything beyond what was expected: a copy
        more = await consumer.getmany(tp, timeout_ms=2000)
        return found + more.get(tp, [])
    finally:
        await consumer.stop()


def stored_runs(db: Path, run_ids: set[str]) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute("SELECT runId FROM run_status WHERE state = 'COMPLETE'").fetchall()
    return len(run_ids & {r[0] for r in rows})


def test_big_messages_are_dead_lettered_once_and_never_stop_the_pipeline(tmp_path: Path) -> None:
    data = tmp_path / "data"
    worker_port = free_port()
    env = clean_env(
        LINEAGE_DATA_DIR=str(data),
        LINEAGE_API_PORT=str(free_port()),
        LINEAGE_WORKER_PORT=str(worker_port),
        LINEAGE_PARTITIONS="4",
        **up_env(f"big-{uuid.uuid4().hex[:8]}"),
    )
    topic = env.get("LINEAGE_TOPIC", "openlineage.events")
    if EXTERNAL_KAFKA:  # Kafka takes ~1 MB by default: this test's events topic takes 32 MB
        asyncio.run(create_big_topic(EXTERNAL_KAFKA, topic))
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "lineage_faust", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        addr = data / "broker.addr"
        if EXTERNAL_KAFKA:
            bootstrap = EXTERNAL_KAFKA
        else:
            wait_until(lambda: addr.exists() and addr.read_text().strip(), 30, "the broker")
            bootstrap = addr.read_text().strip()
        wait_for_port("127.0.0.1", worker_port, 60)
        health = f"http://127.0.0.1:{worker_port}/health"
        wait_until(lambda: httpx.get(health, timeout=5).status_code == 200, 60, "worker health")

        big = big_messages()
        positions = asyncio.run(produce(bootstrap, topic, big))
        run_ids = [str(uuid.uuid4()) for _ in range(300)]
        started = time.monotonic()
        ordinary = [(None, ol_event(r, t)) for r in run_ids for t in ("START", "COMPLETE")]
        asyncio.run(produce(bootstrap, topic, ordinary))
        wait_until(
            lambda: stored_runs(data / "lineage.db", set(run_ids)) == 300,
            60,
            "every ordinary run stored",
            0.2,
        )
        took = time.monotonic() - started
        print(f"300 ordinary runs stored {took:.2f} s after the big messages")

        # each big message once on the dead-letter topic, cut to fit, with its size and hash
        letters = asyncio.run(read_topic(bootstrap, f"{topic}.dlq", len(big)))
        assert len(letters) == len(big), [r.offset for r in letters]
        by_source = {}
        for record in letters:
            headers = dict(record.headers)
            source = (
                int(headers["lineage.source.partition"]),
                int(headers["lineage.source.offset"]),
            )
            assert source not in by_source, f"{source} dead-lettered twice"
            by_source[source] = (record, headers)
        for position, (key, value) in zip(positions, big, strict=True):
            record, headers = by_source[position]
            assert headers["lineage.dlq.reason"] == b"too_large"
            assert headers["lineage.dlq.truncated"] == b"true"
            assert int(headers["lineage.dlq.original.size"]) == len(value)
            sha = hashlib.sha256(value).hexdigest().encode()
            assert headers["lineage.dlq.original.sha256"] == sha
            assert record.key == key
            assert value.startswith(record.value) and 0 < len(record.value) < DLQ_LIMIT
            size = len(record.value) + len(record.key or b"")
            size += sum(len(k) + len(v) for k, v in record.headers)
            assert size <= DLQ_LIMIT

        # and once in the store: the first 64 KiB, the size and the hash
        with sqlite3.connect(f"file:{data / 'lineage.db'}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                'SELECT partition, "offset", reason, length(value), valueBytes, valueSha256 '
                "FROM dead_letters"
            ).fetchall()
        kept = {(r[0], r[1]): r[2:] for r in rows}
        assert sorted(kept) == sorted(positions)
        for position, (_, value) in zip(positions, big, strict=True):
            sha = hashlib.sha256(value).hexdigest()
            assert kept[position] == ("too_large", 64 * 1024, len(value), sha), position

        # the operator's check: consumed = stored + deduplicated + dead-lettered, lag 0
        embedded = "0" if EXTERNAL_KAFKA else "1"
        stats_env = {
            **env,
            "LINEAGE_KAFKA_BOOTSTRAP": bootstrap,
            "LINEAGE_EMBEDDED_BROKER": embedded,
        }

        def holds() -> subprocess.CompletedProcess | None:
            done = run_cli(stats_env, "stats")
            return done if done.returncode == 0 and "lag 0" in done.stdout else None

        report = wait_until(holds, 30, "the accounting to hold with every offset committed", 1)
        total = len(big) + len(ordinary)
        assert f"consumed {total} = stored {len(ordinary)} + deduplicated 0" in report.stdout
        assert ": holds" in report.stdout
        body = httpx.get(health, timeout=5).json()
        assert body["status"] == "ok", body
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()
    text = (tmp_path / "up.log").read_text(errors="replace")
    assert "MessageSizeTooLargeError" not in text, text[-3000:]
    assert up.returncode == 0, text[-3000:]


@needs_cassandra
def test_an_event_cassandra_refuses_is_dead_lettered_and_the_pipeline_goes_on(
    stack: Stack,
) -> None:
    """Cassandra rejects a mutation over half its commit log segment (16 MiB by default) for
    good: with LINEAGE_MAX_EVENT_BYTES raised above that, such an event reaches the store."""
    keyspace = new_keyspace()
    url = cassandra_url(keyspace)
    port = free_port()
    stack.extra_env.update(
        LINEAGE_STORE=url,
        LINEAGE_MAX_EVENT_BYTES=str(32 * 1024 * 1024),
        LINEAGE_WORKER_PORT=str(port),
        **cassandra_env(),
    )
    if not stack.embedded:  # Kafka takes ~1 MB by default
        asyncio.run(create_big_topic(stack.bootstrap, stack.topic))
    worker = stack.spawn("worker")
    try:
        wait_until(lambda: "Worker]: Ready" in worker.log(), 60, "worker ready")
        big_run = str(uuid.uuid4())
        run_ids = [str(uuid.uuid4()) for _ in range(50)]
        messages = [(None, ol_event(big_run, "START", facet="z" * (17 * 1024 * 1024)))]
        messages += [(None, ol_event(r, t)) for r in run_ids for t in ("START", "COMPLETE")]
        asyncio.run(produce(stack.bootstrap, stack.topic, messages))

        def health() -> dict:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()

        body = wait_until(
            lambda: h if (h := health())["accounting"]["consumed"] == len(messages) else None,
            120,
            "every message consumed",
            0.5,
        )
        acct = body["accounting"]
        assert acct["balanced"] and acct["deadLettered"] == 1, acct
        assert acct["stored"] == len(messages) - 1
        assert body["status"] == "degraded"
        assert [r["what"] for r in body["refused"]] == ["store events"]
        # by the protocol's frame limit or the mutation size limit, whichever comes first
        assert re.search("too big|oversized mutation", body["refused"][0]["lastError"])

        async def check_store() -> None:
            store = open_store(url)
            await store.open()
            try:
                [letter] = await store.get_dead_letters(10)
                assert letter.reason == "store_refused"
                assert letter.value_bytes == len(messages[0][1])
                for run_id in run_ids:
                    assert await store.count_events(run_id) == 2
                assert await store.count_events(big_run) == 0
            finally:
                await store.close()

        asyncio.run(check_store())
    finally:
        worker.stop()
        drop_keyspace(keyspace)
