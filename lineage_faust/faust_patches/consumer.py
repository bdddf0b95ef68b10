"""The worker's reach into Faust's consumer (and the aiokafka consumer inside it).

Faust has no public way to: make an event the stream's current one (its rocksdb table reads
in that event's partition), see which partitions its flow control paused, read the
position its stream has read to, pause/resume partitions in aiokafka, or have the consumer
rejoin its group. Each helper here is that one private access, nothing more; the guard
tests (``tests/unit/test_faust_patches.py``) fail when the names they rely on change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from faust.types import TP


def make_current(stream: Any, event: Any) -> None:
    """Make ``event`` the stream's current event: Faust's rocksdb table store reads in the
    partition of the current event, and one group of track_runs messages spans partitions."""
    stream._set_current_event(event)


def flow_paused(app: Any) -> set[TP]:
    """Partitions Faust stopped fetching because their stream's queue is full."""
    return set(getattr(app.consumer, "_buffered_partitions", ()))


def resume_flow(app: Any, tp: TP) -> None:
    """Have Faust fetch ``tp`` again, as it does when the stream's queue drains."""
    app.consumer.on_buffer_drop(tp)


def unfetched(app: Any, flow_paused_now: set[TP]) -> set[TP]:
    """Assigned partitions that Faust neither fetches nor knows to be paused."""
    consumer = app.consumer
    return (
        set(consumer.assignment())
        - set(consumer._get_active_partitions())
        - set(getattr(consumer, "_paused_partitions", ()))
        - flow_paused_now
    )


def read_offset(app: Any, tp: TP) -> int | None:
    """The last offset Faust's stream read on ``tp`` (None before the first)."""
    return app.consumer._read_offset.get(tp)


async def pause_or_resume(app: Any, method: str, tps: Iterable[TP]) -> None:
    """``pause`` or ``resume`` partitions in the aiokafka consumer, in its own thread (what
    is no longer assigned is left out: aiokafka refuses to pause it)."""
    thread = app.consumer._thread  # Faust's consumer thread
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]

    async def call() -> None:
        consumer = thread._ensure_consumer()  # the aiokafka consumer
        assigned = consumer.assignment()
        getattr(consumer, method)(*(tp for tp in wanted if tp in assigned))

    await thread.call_thread(call)


async def request_rejoin(app: Any) -> None:
    """Have this member refresh its metadata and rejoin the group, so the leader assigns
    again with every topic in view (aiokafka has no public call for it, Faust none at all)."""
    thread = app.consumer._thread

    async def rejoin() -> None:
        consumer = thread._ensure_consumer()
        await consumer._client.force_metadata_update()
        consumer._coordinator.request_rejoin()

    await thread.call_thread(rejoin)


def rocksdb_databases(table: Any) -> list[Any]:
    """The open rocksdb databases behind a Faust table (none for an in-memory table)."""
    return list(getattr(table.data, "_dbs", {}).values())
