"""The track_runs agent: fold the run-updates messages into the live run table and the store.

Batched like ingest: the messages waiting in the channel (any partitions) are folded together
(``run_states.RunStates``), so the store is read and written and the broker awaited once per
group, not once per message. A group closes at ``GROUP_UPDATES`` run updates: that bounds what
one group holds (states, status rows, changelog records) while ingest runs ahead. Sweep
requests (a timer's) are handled after the group's updates. Acknowledged after the group's
work, its publishing included; while the next group waits, that publishing overlaps its fold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import faust

from lineage_faust.domain.triage import decode_updates
from lineage_faust.faust_patches.consumer import make_current
from lineage_faust.faust_patches.table_writes import TableWriter
from lineage_faust.worker.backpressure import EventsValve
from lineage_faust.worker.run_states import Changes, Part, RunStates
from lineage_faust.worker.state import WorkerState

log = logging.getLogger(__name__)
SWEEP = b'{"sweep":true}'
# Run updates folded together, at most (about: whole messages). Groups of up to 64 messages
# (16k updates of small events) took the worker to ~530 MB in the memory benchmark once ingest
# ran ahead; 4,000 held it to 371 MB at 300k runs, at the same speed.
GROUP_UPDATES = 4000


class FaustLiveTable:
    """The live table as run_states reads and writes it: Faust's rocksdb table, read in the
    partition of the message that owns the runs (made the stream's current event), written a
    group at a time (``TableWriter``)."""

    def __init__(self, table: Any, writer: TableWriter) -> None:
        self.table, self.writer = table, writer
        self.stream: faust.StreamT | None = None  # the agent's, set when it starts

    def read(self, source: Any, run_ids: Iterable[str]) -> dict[str, bytes | None]:
        make_current(self.stream, source)
        return {run_id: self.table.get(run_id.encode()) for run_id in run_ids}

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.table.items()

    async def write(self, changes: Changes) -> None:
        await self.writer.write(changes)


class TrackRuns:
    def __init__(
        self,
        state: WorkerState,
        runs: RunStates,
        table: FaustLiveTable,
        valve: EventsValve,
        assigned: Any,
    ) -> None:
        """``assigned()``: this worker's run-updates partitions."""
        self.state, self.runs, self.table, self.valve = state, runs, table, valve
        self.assigned = assigned

    async def run(self, stream: faust.StreamT) -> None:
        """The agent's body."""
        manual = stream.noack()
        self.table.stream = manual
        group: list[faust.EventT] = []
        parts: list[Part] = []
        sweeps: list[faust.EventT] = []
        held = 0  # run updates in the group
        unacked: tuple[Any, list[faust.EventT]] | None = None  # a group still publishing
        async for event in manual.events():
            self.state.note_offset(event.message)
            group.append(event)
            if event.value == SWEEP:
                sweeps.append(event)
            else:
                try:
                    updates = decode_updates(event.value)
                except Exception:  # written by us; a bad one is a bug, never a reason to stall
                    log.exception(
                        "undecodable run-updates message at offset %d", event.message.offset
                    )
                else:
                    parts.append((event, event.message.partition, updates))
                    held += len(updates)
            if held < GROUP_UPDATES and not manual.channel.empty():
                continue
            self.observe_hops(parts)
            published = await self.runs.fold(parts) if parts else None
            for sweep in sweeps:  # after the updates: a sweep looks at time, not order
                await self.runs.sweep(sweep, sweep.message.partition, self.assigned())
            # the previous group is acknowledged once published; this one too when nothing
            # more is waiting (else while the next group is folded)
            if unacked is not None:
                await self.acknowledge(manual, *unacked)
            unacked = (published, group)
            if manual.channel.empty():
                await self.acknowledge(manual, *unacked)
                unacked = None
            group, parts, sweeps, held = [], [], [], 0
            await self.valve.adjust()  # caught up enough: fetch events again

    def observe_hops(self, parts: list[Part]) -> None:
        """Each message's time from ingest forwarding it to being folded (/metrics)."""
        hop, now = self.state.stats.metrics.page_path.labels("hop"), time.time()
        for event, _, _ in parts:
            if event.message.timestamp:
                hop.observe(now - event.message.timestamp)

    async def acknowledge(
        self, manual: faust.StreamT, published: Any, group: list[faust.EventT]
    ) -> None:
        if published is not None:
            await published
        for done in group:
            await manual.ack(done)
            self.state.updates_done[done.message.partition] = done.message.offset + 1
