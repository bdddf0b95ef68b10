"""Eager delivery (lineage_faust/faust_patches/delivery.py): the callback's first step runs in the
consumer's loop; only a callback that has to wait becomes a task."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import orjson
from aiokafka import AIOKafkaProducer

from lineage_faust.faust_patches.delivery import FAUST_LOOP_SHA256, faust_loop_sha256, start_eagerly
from lineage_faust.kafka.embedded import EmbeddedBroker
from lineage_faust.kafka.topics import ensure_topics


def test_faust_loop_is_the_one_copied() -> None:
    """delivery.drain_messages is a copy of Faust's loop: an upgrade that changes the
    original must be looked at (and this hash updated with the copy)."""
    assert faust_loop_sha256() == FAUST_LOOP_SHA256


async def test_a_callback_that_need_not_wait_finishes_at_once() -> None:
    done = []

    async def put() -> str:
        done.append(1)
        return "ignored"

    assert start_eagerly(put()) is None
    assert done == [1]


async def test_a_callback_that_waits_goes_on_from_where_it_waited() -> None:
    gate = asyncio.get_running_loop().create_future()
    steps = []

    async def put() -> str:
        steps.append("first")
        value = await gate
        steps.append(value)
        return "done"

    rest = start_eagerly(put())
    assert rest is not None and steps == ["first"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("second")
    assert await task == "done"
    assert steps == ["first", "second"]


async def test_errors_propagate_at_once_and_after_a_wait() -> None:
    async def fails_at_once() -> None:
        raise ValueError("at once")

    try:
        start_eagerly(fails_at_once())
    except ValueError as exc:
        assert str(exc) == "at once"
    else:
        raise AssertionError("the error was swallowed")

    gate = asyncio.get_running_loop().create_future()

    async def fails_later() -> None:
        await gate
        raise KeyError("later")

    rest = start_eagerly(fails_later())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    gate.set_result(None)
    try:
        await task
    except KeyError as exc:
        assert exc.args == ("later",)
    else:
        raise AssertionError("the error was swallowed")


async def test_cancelling_the_rest_cancels_the_callback() -> None:
    """What Faust's wait_first does to a delivery when flow is suspended (a rebalance)."""
    gate = asyncio.get_running_loop().create_future()
    cleaned = []

    async def put() -> None:
        try:
            await gate
        finally:
            cleaned.append(True)

    rest = start_eagerly(put())
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("not cancelled")
    assert cleaned == [True] and gate.cancelled()


async def test_a_full_stream_queue_loses_and_doubles_nothing(broker: EmbeddedBroker) -> None:
    """A real worker on this transport with an 8-message stream queue and a slow agent:
    deliveries wait for room, and every message arrives once, in order per partition."""
    topic, partitions, n = "delivery-probe", 4, 2_000
    await ensure_topics(broker.bootstrap, {topic: partitions})
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic, b"%d" % i, partition=i % partitions) for i in range(n)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.delivery_probe",
        broker.bootstrap,
        topic,
        str(n),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    found = re.search(rb'\{"seen".*\}', out + err)  # Faust logs what its workers print
    assert found, err.decode()[-3000:]
    result = orjson.loads(found.group(0))
    seen = {int(p): offsets for p, offsets in result["seen"].items()}
    assert seen == {p: list(range(n // partitions)) for p in range(partitions)}
    assert result["waited"] > 0, "the queue never filled: the waiting path was not exercised"
    assert result["at_once"] > 0
