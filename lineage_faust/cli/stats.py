"""``lineage-faust stats``: is everything accounted for? The worker's own accounting (every
consumed message stored, deduplicated or dead-lettered), the group's position on the events
topic, and what the store holds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from lineage_faust.kafka.security import client_options
from lineage_faust.kafka.topics import describe
from lineage_faust.settings import Settings
from lineage_faust.store import store_for


async def topic_states(settings: Settings, topic: str) -> dict:
    """The topic's partition count, if it exists (never creating it, as a metadata request
    for one topic would on a cluster that auto-creates topics)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        request_timeout_ms=10_000,
        **client_options(settings.kafka_security),
    )
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return {}
        return await describe(admin, [topic])
    finally:
        await admin.close()


def worker_accounting(url: str) -> dict[str, Any] | str:
    try:
        body = httpx.get(f"{url.rstrip('/')}/health", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"the worker cannot be reached at {url} ({type(exc).__name__}): is it running?"
    return body.get("accounting") or "no accounting on this worker's /health"


async def topic_positions(settings: Settings) -> list[tuple[int, int, int | None]] | str:
    """(partition, end offset, group's committed offset) of the events topic."""
    try:
        states = await topic_states(settings, settings.topic)
    except KafkaError as exc:
        return f"unavailable ({type(exc).__name__})"
    if not states:
        return "no such topic"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=settings.app_id,
        enable_auto_commit=False,
        **client_options(settings.kafka_security),
    )
    try:
        await consumer.start()
        tps = [TopicPartition(settings.topic, p) for p in range(states[settings.topic].partitions)]
        ends = await consumer.end_offsets(tps)
        return [(tp.partition, ends[tp], await consumer.committed(tp)) for tp in tps]
    except KafkaError as exc:
        return f"unavailable ({type(exc).__name__})"
    finally:
        await consumer.stop()


async def store_counts(settings: Settings) -> dict[str, int] | str:
    store = store_for(settings)
    await store.open()
    try:
        counts = await store.counts()
    finally:
        await store.close()
    return counts if counts is not None else "not counted (it would scan the whole cluster)"


def report(settings: Settings, worker_url: str | None) -> tuple[str, bool]:
    """The report's text, and whether every check that could run holds."""
    lines, ok = [], True
    if worker_url:
        acct = worker_accounting(worker_url)
        lines.append(f"worker {worker_url} (since it started):")
        if isinstance(acct, str):
            lines.append(f"  {acct}")
            ok = False
        else:
            verdict = "holds" if acct["balanced"] else "DOES NOT HOLD"
            lines.append(
                f"  consumed {acct['consumed']} = stored {acct['stored']} + deduplicated "
                f"{acct['deduplicated']} + dead-lettered {acct['deadLettered']}: {verdict}"
            )
            ok = ok and bool(acct["balanced"])
    positions = asyncio.run(topic_positions(settings))
    lines.append(f"topic {settings.topic}, group {settings.app_id}:")
    if isinstance(positions, str):
        lines.append(f"  {positions}")
        ok = False
    else:
        for partition, end, committed in positions:
            # (the embedded broker can under-report the end offset: never a negative lag)
            lag = max(0, end - (committed or 0))
            lines.append(f"  partition {partition}: end {end}, committed {committed}, lag {lag}")
    counts = asyncio.run(store_counts(settings))
    lines.append(f"store {settings.describe_store()}:")
    if isinstance(counts, str):
        lines.append(f"  {counts}")
    else:
        lines.extend(f"  {name}: {n}" for name, n in counts.items())
    return "\n".join(lines), ok
