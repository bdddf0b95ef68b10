"""Faust's table recovery with one ordering fix: seek the stream partitions, then resume them.

faust-streaming 0.15.3 ``Recovery.on_recovery_completed`` resumes the stream partitions while
the fetcher is running and only then seeks them to their committed offsets. Messages fetched
in between are delivered while the seek moves the read position under them, so some offsets
are skipped (Faust then counts them as a gap and commits past messages no agent has seen:
loss) and others are dropped as already read (never acknowledged: the commit stalls for good).
Found by ``tests/test_crash.py`` (a log line per skipped offset, the store missing events).

Seeking while the partitions are still paused leaves nothing to race: the fetcher delivers
nothing from a paused partition, and the first message after the resume is the committed one.
The rest of the method is Faust's, unchanged.

With the embedded broker (Tansu), a second fix: it answers "latest offset" with the base offset
of the partition's last record batch + 1, so Faust would end changelog recovery before the
last batch's other records, which then fill the recovery queue and stall every stream.
:class:`ExactEndRecovery` reads the last batch itself to find the true end.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP, ConsumerT

END_READ_TIMEOUT_S = 10.0
# sha256 of faust-streaming 0.15.3's Recovery.on_recovery_completed, which
# SeekThenResumeRecovery.on_recovery_completed copies with its calls reordered
# (tests/test_faust_patches.py fails if the upstream method changes)
RECOVERY_COMPLETED_SHA256 = "6ef567acf072e46da3fccbccc6d662371f634f622c3d510972d5df81f70ae3ac"


class SeekThenResumeRecovery(Recovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again (generation %s)", generation_id)
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets (before resuming them).")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
            self.read_from_committed(consumer, assignment)
            await self.seek_uncommitted(consumer, assignment)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        await self.app._fetcher.maybe_start()  # type: ignore[attr-defined]
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    def read_from_committed(self, consumer: ConsumerT, assignment: set[TP]) -> None:
        """Faust's ``perform_seek`` records a partition's committed offset (the next one to
        read) as its last one read, so a first record past it (the committed one skipped)
        looks like no gap at all. Recorded as the one before: the committed record must come
        first, else the loop sees the gap and reads it again (``delivery.py``)."""
        read = consumer._read_offset  # type: ignore[attr-defined]
        for tp in assignment:
            if not self._is_changelog_tp(tp) and read.get(tp):
                read[tp] -= 1

    async def seek_uncommitted(self, consumer: ConsumerT, assignment: set[TP]) -> None:
        """Where stream partitions with no committed offset start: the client's reset
        (``consumer_auto_offset_reset``), unless a subclass knows better."""


class ExactEndRecovery(SeekThenResumeRecovery):
    """For the embedded broker: changelog ends read from the records, not from ListOffsets;
    stream partitions no one committed read from their first record, not from where the
    client's reset lands."""

    async def seek_uncommitted(self, consumer: ConsumerT, assignment: set[TP]) -> None:
        # Taking over a partition its killed owner never committed, the client's reset to
        # "earliest" now and then landed at the partition's end on the embedded broker (a
        # worker skipped 160 events and 50 run-updates messages: tests/integration/
        # test_crash.py, 1 run in ~6). Its memory-only log always starts at 0.
        committed = consumer._committed_offset  # type: ignore[attr-defined]
        for tp in sorted(assignment):
            if not self._is_changelog_tp(tp) and committed.get(tp) is None:
                await consumer.seek(tp, 0)

    async def _build_highwaters(
        self, consumer: ConsumerT, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        reported = {tp: destination[tp] + 1 for tp in tps if destination[tp] >= 0}
        if not reported:
            return
        bootstrap = ",".join(f"{url.host}:{url.port}" for url in self.app.conf.broker)
        auth = credentials_to_aiokafka_auth(self.app.conf.broker_credentials)
        for tp, end in (await read_ends(bootstrap, reported, auth)).items():
            if end != reported[tp]:
                self.log.info("%s[%d]: changelog ends at %d, not %d", *tp, end, reported[tp])
            destination[tp] = end - 1  # Faust keeps the last offset, not the end


async def read_ends(
    bootstrap: str, reported: dict[TP, int], auth: Mapping[str, Any]
) -> dict[TP, int]:
    """Each partition's true end offset, given a reported end that may point into its last
    record batch: read from the reported end - 1 to the end of the data there now. ``auth``:
    the worker's connection options (TLS, SASL), as Faust gives them to aiokafka."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **auth
    )
    await consumer.start()
    ends = dict(reported)
    try:
        wanted = {TopicPartition(tp.topic, tp.partition): tp for tp in reported}
        consumer.assign(list(wanted))
        for partition, tp in wanted.items():
            consumer.seek(partition, reported[tp] - 1)
        deadline = asyncio.get_running_loop().time() + END_READ_TIMEOUT_S
        remaining = set(wanted)
        while remaining and asyncio.get_running_loop().time() < deadline:
            fetched = await consumer.getmany(*remaining, timeout_ms=200)
            for partition, records in fetched.items():
                if records:
                    tp = wanted[partition]
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
            # a partition is done once the position passed everything there is
            for partition in list(remaining):
                high = consumer.highwater(partition)
                position = await consumer.position(partition)
                if partition in fetched and (high is None or position >= high):
                    remaining.discard(partition)
    finally:
        await consumer.stop()
    return ends


# TableManager.on_start as faust-streaming 0.15.3 has it: a fixed 1 s sleep, then the same two
# steps as on_start below (tests/unit/test_faust_patches.py compares the source's hash)
TABLE_MANAGER_ON_START_SHA256 = "365dd25fbc0e068499c89e526516c638693a2d143b6ac249f84a60f5267fec9d"


class SeekThenResumeTableManager(TableManager):
    """Faust's table manager, recovering with :class:`SeekThenResumeRecovery`, and starting
    without Faust's fixed one-second sleep (it lets tables be declared after the app starts;
    the worker declares its one table before, so the sleep was a second of every start,
    measured on the worker's start-to-first-stored)."""

    recovery_class: type[Recovery] = SeekThenResumeRecovery

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = self.recovery_class(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class EmbeddedBrokerTableManager(SeekThenResumeTableManager):
    recovery_class = ExactEndRecovery
