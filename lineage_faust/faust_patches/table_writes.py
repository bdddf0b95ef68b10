"""Writing a group's changes to the live table at once, per partition.

Faust writes a table key by key: a rocksdb put, a changelog record through its producer
buffer (one aiokafka send, one future, each), and, when the broker has acknowledged the
record, another rocksdb put of the partition's persisted changelog offset
(``Collection._on_changelog_sent``). py-spy put that at about a fifth of the worker's
event-loop time under a backlog, for 1-4 thousand writes per track_runs group.

:class:`TableWriter` writes a group's changes of one partition as one rocksdb ``WriteBatch``
(as Faust's own changelog recovery does, ``Store.apply_changelog_batch``), sends them to the
partition's changelog as aiokafka record batches (the same keys and values Faust would
send, so Faust's recovery reads them as its own), and sets the persisted offset once per
batch, from the broker's answer. Like Faust's, the writer does not wait for that answer:
Faust's offset commit flushes the producer first, and the group is acknowledged only after
its writes (at-least-once; a redelivered group writes the same states again).

Order: rocksdb first, then the changelog, as Faust does. A group's sends run as a task of
their own that a rebalance's cancellation does not stop (a group's records reach the
changelog in the order written, before the next group's); a worker told to stop waits for
them, so the changelog ends with every run's last state (tests/test_changelog.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP
from rocksdict import WriteBatch

log = logging.getLogger(__name__)
STOP_WAIT_S = 10.0  # how long a stopping worker waits for a group's changelog records

# one partition's changes: (key, value), value None to delete
Changes = Sequence[tuple[bytes, bytes | None]]


class TableWriter:
    """Batched writes to one rocksdb-backed Faust table and its changelog."""

    def __init__(self, app: faust.App, table: faust.Table) -> None:
        self._app = app
        self._table = table
        self._sending: asyncio.Future | None = None

    async def write(self, changes: Mapping[int, Changes]) -> None:
        """Apply ``changes`` (partition -> its changes, in order) to the table and hand them
        to the changelog; returns once every record is queued in the producer."""
        changes = {partition: items for partition, items in changes.items() if items}
        if not changes:
            return
        store = self._table.data
        if not isinstance(store, RocksDBStore):  # the worker's table is always rocksdb
            raise TypeError(f"batched table writes need Faust's rocksdb store, not {store!r}")
        for partition, items in changes.items():
            batch = WriteBatch(raw_mode=True)
            for key, value in items:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
                store._key_index[key] = partition  # what Faust's own _set keeps
            store._db_for_partition(partition).write(batch)
        self._sending = asyncio.ensure_future(self._send(store, changes, self._sending))
        try:
            await asyncio.shield(self._sending)
        except asyncio.CancelledError:
            if self._app.should_stop:
                await self._finish_while_stopping()
            raise  # rebalancing: the sends go on by themselves

    async def _finish_while_stopping(self) -> None:
        sending = self._sending
        if sending is None or sending.done():
            return
        done, _ = await asyncio.wait([sending], timeout=STOP_WAIT_S)
        if not done:
            log.warning(
                "stopping: a group's changelog records not all sent within %.0f s; "
                "the group is folded again on restart",
                STOP_WAIT_S,
            )

    async def _send(
        self,
        store: RocksDBStore,
        changes: Mapping[int, Changes],
        previous: asyncio.Future | None,
    ) -> None:
        if previous is not None and not previous.done():
            # a group cancelled by a rebalance may still be sending: its records go first
            await asyncio.wait([previous])
        producer = self._app.producer._ensure_producer()  # Faust's aiokafka producer
        topic = self._table.changelog_topic.get_topic_name()
        try:
            for partition, items in changes.items():
                builder = producer.create_batch()
                for key, value in items:
                    if builder.append(key=key, value=value, timestamp=None) is None:  # full
                        await self._send_batch(producer, store, builder, topic, partition)
                        builder = producer.create_batch()
                        builder.append(key=key, value=value, timestamp=None)  # first: fits
                await self._send_batch(producer, store, builder, topic, partition)
        except Exception:
            # The table is ahead of its changelog: a worker that recovers the partition from
            # it finds runs behind the store, and rebuilds them from the store (load_states).
            log.exception("could not send changelog records of the live table")

    async def _send_batch(
        self, producer: Any, store: RocksDBStore, builder: Any, topic: str, partition: int
    ) -> None:
        count = builder.record_count()
        if not count:
            return
        sent = await producer.send_batch(builder, topic, partition=partition)
        sent.add_done_callback(partial(_persist_offset, store, TP(topic, partition), count))


def _persist_offset(store: RocksDBStore, tp: TP, count: int, sent: asyncio.Future) -> None:
    """The batch's last offset, as Faust's _on_changelog_sent keeps it per record."""
    if sent.cancelled() or sent.exception() is not None:
        if not sent.cancelled():
            log.warning("changelog batch to %s[%d] failed: %r", *tp, sent.exception())
        return
    store.set_persisted_offset(tp, sent.result().offset + count - 1)
