"""Permanent failures are passed by with the message accounted for; transient ones are waited
out. Every class on the pipeline's path: broker (record too large, a send failing mid-batch),
store (a value it refuses), and the retry loop that decides between the two."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka import errors as kafka
from faust.exceptions import ProducerSendError

from lineage_faust.domain.dead_letters import shrink
from lineage_faust.domain.triage import RawMessage, triage
from lineage_faust.failures import is_permanent
from lineage_faust.kafka.embedded import EmbeddedBroker
from lineage_faust.retry import retry_forever
from lineage_faust.store import StoreError, StoreRefused, open_store
from lineage_faust.worker.accounting import Health
from lineage_faust.worker.sends import SendEachOnce
from lineage_faust.worker.store_writes import write_batch


def wrapped(error: Exception) -> Exception:
    """As Faust's producer raises aiokafka's errors."""
    try:
        raise ProducerSendError(f"Error while sending: {error!r}") from error
    except ProducerSendError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        kafka.MessageSizeTooLargeError(),
        kafka.RecordListTooLargeError(),
        kafka.InvalidTopicError(),
        kafka.TopicAuthorizationFailedError(),
        StoreRefused("cassandra refused insert_event: Rejected an oversized mutation"),
    ],
)
def test_errors_that_waiting_cannot_mend_are_permanent(error: Exception) -> None:
    assert is_permanent(error) and is_permanent(wrapped(error))


@pytest.mark.parametrize(
    "error",
    [
        kafka.KafkaConnectionError(),
        kafka.KafkaTimeoutError(),
        kafka.RequestTimedOutError(),
        kafka.NotLeaderForPartitionError(),
        kafka.UnknownTopicOrPartitionError(),
        kafka.NotEnoughReplicasError(),
        StoreError("sqlite: database is locked"),
        OSError("connection reset"),
    ],
)
def test_errors_that_pass_are_transient(error: Exception) -> None:
    assert not is_permanent(error) and not is_permanent(wrapped(error))


async def test_retry_forever_waits_out_transient_errors_and_gives_up_on_permanent_ones() -> None:
    health = Health()
    calls = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise kafka.KafkaConnectionError("broker away")
        return "done"

    assert await retry_forever("send", flaky, first_delay_s=0.01, health=health) == "done"
    assert len(calls) == 3 and health.ok

    async def refused() -> None:
        calls.append(time.monotonic())
        raise wrapped(kafka.MessageSizeTooLargeError("The message is 2097641 bytes"))

    calls.clear()
    with pytest.raises(ProducerSendError):
        await retry_forever("send", refused, first_delay_s=0.01, health=health)
    assert len(calls) == 1, "a permanent error is never retried"
    assert health.ok, "and is not reported as an outage being waited out"


class ProducerTopic:
    """A topic as SendEachOnce uses Faust's (``send`` returns the delivery future), over a
    real aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer, name: str) -> None:
        self.producer, self.name = producer, name

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, force: bool, key=None, value=None, headers=None, partition=None):
        return await self.producer.send(
            self.name, value, key=key, headers=headers, partition=partition
        )


async def read_all(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found: list = []
        while batch := await consumer.getmany(tp, timeout_ms=1500):
            found += batch[tp]
        return found
    finally:
        await consumer.stop()


@pytest.fixture
def topic_name() -> str:
    return f"t-sends-{uuid.uuid4().hex[:8]}"


async def test_a_dead_letter_the_producer_refuses_is_cut_until_it_fits_and_sent_once(
    broker: EmbeddedBroker, topic_name: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=64 * 1024)
    await producer.start()
    original = os.urandom(200_000)
    try:
        rejected = triage(
            [RawMessage(original, b"k", "events", 0, 7)], max_bytes=100_000, partitions=1
        ).rejected
        # a budget above what this producer takes: the broker's side refuses, we cut again
        letter = rejected[0].dlq_message(1_000_000)
        assert letter["value"] == original  # fits the budget: sent whole at first
        sender = SendEachOnce(ProducerTopic(producer, topic_name), [letter], on_refused=shrink)
        [sent] = await sender.send()
        assert not sender.given_up and sent.offset == 0
    finally:
        await producer.stop()
    [record] = await read_all(broker.bootstrap, topic_name)
    headers = dict(record.headers)
    assert headers["lineage.dlq.reason"] == b"too_large"
    assert headers["lineage.dlq.truncated"] == b"true"
    assert headers["lineage.dlq.original.size"] == b"200000"
    assert headers["lineage.dlq.original.sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert 0 < len(record.value) < 64 * 1024 and original.startswith(record.value)


async def test_a_send_failing_mid_batch_is_retried_without_copies(
    broker: EmbeddedBroker, topic_name: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        messages = [{"key": None, "value": f"m{i}".encode(), "partition": 0} for i in range(6)]
        messages[3]["partition"] = 5  # the topic has one partition: this send fails
        sender = SendEachOnce(ProducerTopic(producer, topic_name), messages)
        with pytest.raises(AssertionError, match="Unrecognized partition"):
            await sender.send()
        assert sorted(sender.sent) == [0, 1, 2]  # what the broker took is remembered
        messages[3]["partition"] = 0  # the cause passes
        await sender.send()
        await sender.send()  # and a retry of a finished batch sends nothing
    finally:
        await producer.stop()
    records = await read_all(broker.bootstrap, topic_name)
    assert sorted(r.value for r in records) == [f"m{i}".encode() for i in range(6)]


def incompressible_event(run_id: str, event_type: str, pad_bytes: int = 0) -> bytes:
    run: dict = {"runId": run_id}
    if pad_bytes:
        pad = base64.b64encode(os.urandom(pad_bytes)).decode()
        run["facets"] = {"spark": {"_producer": "p", "_schemaURL": "s", "plan": pad}}
    return orjson.dumps(
        {
            "eventType": event_type,
            "eventTime": "2026-11-30T10:00:00Z",
            "producer": "p",
            "run": run,
            "job": {"namespace": "refused", "name": "job"},
        }
    )


async def test_an_event_the_store_refuses_is_dead_lettered_and_the_rest_stored(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'refusing.db'}")
    await store.open()
    # a real SQLite refusal: this connection holds no value over 100 KB (SQLITE_TOOBIG)
    await store._run(lambda conn: conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100_000))
    run_ids = [str(uuid.uuid4()) for _ in range(3)]
    values = [incompressible_event(r, "START") for r in run_ids]
    values.insert(1, incompressible_event(run_ids[0], "RUNNING", pad_bytes=200_000))
    messages = [RawMessage(v, None, "events", 0, i) for i, v in enumerate(values)]
    batch = triage(messages, max_bytes=1 << 20, partitions=1, pack_text=store.pack_text)
    try:
        written = await write_batch(store, batch, messages)
        assert (written.run_events, written.new_run_events) == (3, 3)
        [refused] = batch.rejected
        assert refused.rejection.reason == "store_refused"
        assert refused.message.offset == 1 and "too big" in refused.rejection.detail
        assert written.run_events + len(batch.rejected) == len(messages)  # all accounted for
        for run_id in run_ids:
            assert await store.count_events(run_id) == 1
        [letter] = await store.get_dead_letters(10)
        assert (letter.offset, letter.reason, letter.value_bytes) == (
            1,
            "store_refused",
            len(values[1]),
        )
    finally:
        await store.close()


def test_health_tells_an_outage_a_stall_and_what_was_passed_by() -> None:
    health = Health()
    assert health.report()["status"] == "ok"
    health.refused("send dead letters", kafka.TopicAuthorizationFailedError())
    report = health.report()
    assert report["status"] == "degraded" and report["failing"] == []
    [refused] = report["refused"]
    assert refused["what"] == "send dead letters" and refused["count"] == 1
    assert refused["lastError"].startswith("TopicAuthorizationFailedError")
    stalled = health.report("120 events wait and none was consumed for 75 s")
    assert stalled["status"] == "unhealthy"
    assert stalled["failing"][0]["lastError"].startswith("120 events wait")
    health.failed("store batch", StoreError("sqlite: database is locked"))
    assert health.report()["status"] == "unhealthy"
    health.recovered("store batch")
    assert health.report()["status"] == "degraded"
