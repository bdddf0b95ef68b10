"""The ingest agent: consume events in batches, triage each, store it, dead-letter what is
invalid, forward the run updates by owning partition.

Our own batching with explicit acknowledgements: a batch is flushed when it is full or when
nothing more is waiting (small batches when idle, big ones under backlog), and its events are
acknowledged only after every write and send of the batch has completed, so the offsets Faust
commits never pass an unstored event. (Faust's take_events lost a wake-up after a
crash-restart and stalled the stream for good.) Pipelined: while one batch's writes and sends
are in flight, the next one is triaged; batches are acknowledged strictly in order, and
stored in order (``store_in_turn``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from functools import partial

import faust

from lineage_faust.domain.dead_letters import shrink
from lineage_faust.domain.triage import Batch, RawMessage, Rejected, Written
from lineage_faust.worker.backpressure import EventsValve
from lineage_faust.worker.sends import SendEachOnce
from lineage_faust.worker.state import WorkerState
from lineage_faust.worker.store_writes import write_batch
from lineage_faust.worker.topology import Topology
from lineage_faust.worker.triage_pool import TriagePool

log = logging.getLogger(__name__)
PIPELINE_DEPTH = 2  # batches whose writes may be in flight at once


class Ingest:
    def __init__(
        self, state: WorkerState, topics: Topology, pool: TriagePool, valve: EventsValve
    ) -> None:
        self.state, self.topics, self.pool, self.valve = state, topics, pool, valve

    async def run(self, stream: faust.StreamT) -> None:
        """The agent's body."""
        batch_size = self.state.settings.batch_size
        manual = stream.noack()
        pending: list[faust.EventT] = []
        last_stored: asyncio.Future | None = None
        in_flight: collections.deque[tuple[asyncio.Task, list[faust.EventT]]] = collections.deque()

        async def finish_oldest() -> None:
            task, events = in_flight.popleft()
            await task
            for done in events:
                await manual.ack(done)

        try:
            async for event in manual.events():
                self.state.note_offset(event.message)
                pending.append(event)
                if len(pending) < batch_size and not manual.channel.empty():
                    if not (in_flight and in_flight[0][0].done()):
                        continue
                    await finish_oldest()  # acknowledge promptly what is already done
                    continue
                stored = asyncio.get_running_loop().create_future()
                task = asyncio.ensure_future(self.batch(pending, last_stored, stored))
                in_flight.append((task, pending))
                last_stored = stored
                pending = []
                while len(in_flight) > PIPELINE_DEPTH or (
                    in_flight and manual.channel.empty() and not pending
                ):
                    await finish_oldest()
        finally:
            for task, _ in in_flight:  # stopping or rebalancing: unacknowledged, redelivered
                task.cancel()

    async def batch(
        self, events: list[faust.EventT], after: asyncio.Future | None, stored: asyncio.Future
    ) -> None:
        """One batch. ``after``: resolved once the previous batch is stored; ``stored``:
        this one's, resolved whatever happens."""
        try:
            await self._batch(events, after, stored)
        finally:
            if not stored.done():
                stored.set_result(None)

    async def _batch(
        self, events: list[faust.EventT], after: asyncio.Future | None, stored: asyncio.Future
    ) -> None:
        state = self.state
        messages = [
            RawMessage(
                m.value, m.key, m.topic, m.partition, m.offset, tuple(m.headers or ()), m.timestamp
            )
            for m in (e.message for e in events)
        ]
        batch = await self.pool.triage(messages)
        rejected = list(batch.rejected)
        oldest = min((m.timestamp for m in messages if m.timestamp), default=None)
        # Store writes and broker sends are independent: run them concurrently.
        written, _, _ = await asyncio.gather(
            self.store_in_turn(batch, messages, after),
            state.send_each_once("send dead letters", self.dead_letters(rejected)),
            self.forward_updates(batch, oldest),
        )
        stored.set_result(None)
        refused = batch.rejected[len(rejected) :]  # events the store refused for good
        if refused:
            await state.send_each_once("send dead letters", self.dead_letters(refused))
        for r in batch.rejected:
            if r.rejection.reason == "store_refused":
                state.health.refused("store events", r.rejection.detail)
        log_dead_letters(batch.rejected)
        state.stats.record_batch(batch, written)
        await self.valve.adjust()  # track_runs may now trail by too much: stop fetching events

    async def store_in_turn(
        self, batch: Batch, messages: list[RawMessage], after: asyncio.Future | None
    ) -> Written:
        """A batch's store writes, after the previous batch's. Which events of a batch are
        new is read from the store (Cassandra reads before it writes): two batches in flight
        with the same event would both count it as new if their writes overlapped."""
        if after is not None and batch.written is None:
            await asyncio.shield(after)
        return await self.state.retrying("store batch", partial(self.store, batch, messages))

    async def store(self, batch: Batch, messages: list[RawMessage]) -> Written:
        # stored already by the triage helper (store_writes.py), or here
        written = batch.written or await write_batch(self.state.store, batch, messages)
        self.state.stats.metrics.store_write.labels("events").observe(written.seconds)
        return written

    def dead_letters(self, rejected: list[Rejected]) -> SendEachOnce:
        settings = self.state.settings
        budget = min(settings.dlq_max_message_bytes, settings.producer_max_request_bytes)
        letters = [r.dlq_message(budget) for r in rejected]
        return SendEachOnce(self.topics.dlq, letters, on_refused=shrink)

    async def forward_updates(self, batch: Batch, oldest: float | None) -> None:
        """``oldest``: the batch's oldest Kafka timestamp (epoch seconds), for /metrics."""
        messages = [
            {"key": None, "value": value, "partition": partition}
            for partition, values in batch.update_messages.items()
            for value in values
        ]
        sender = SendEachOnce(self.topics.updates, messages)
        sent = self.state.updates_sent
        for record in await self.state.send_each_once("forward run updates", sender):
            sent[record.partition] = max(sent.get(record.partition, 0), record.offset + 1)
        if messages and oldest is not None:
            self.state.stats.metrics.page_path.labels("ingest").observe(time.time() - oldest)


def log_dead_letters(rejected: list[Rejected]) -> None:
    for r in rejected:
        m = r.message
        # the reason and field, never the detail: it may quote the message's content
        # (which stays on the dead-letter topic and in the store, for whoever may see it)
        log.warning(
            "dead-lettered %s[%d]@%d: %s%s",
            m.topic,
            m.partition,
            m.offset,
            r.rejection.reason,
            f" (field {r.rejection.field})" if r.rejection.field else "",
        )
