"""The worker's consumer loop (faust_patches/delivery.py) reads a gap in a partition's
offsets again before believing it, and the committed record must come first after a seek
(faust_patches/recovery.py). The real loop, over a consumer made of plain objects."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from lineage_faust.faust_patches.delivery import drain_messages
from lineage_faust.faust_patches.recovery import SeekThenResumeRecovery

EVENTS = TP("events", 0)


class Consumer:
    """What the loop uses of Faust's consumer: ``fetches`` are what each getmany returns;
    a seek makes the next fetch start at the sought offset (what the broker then has)."""

    def __init__(self, log: list[int], fetches: list[list[int]], read_offset: int) -> None:
        self.fetches, self.delivered = fetches, []
        self.sought: list[int] = []
        self.gaps: list[tuple[int, int]] = []
        self._read_offset = {EVENTS: read_offset}
        self._log = log
        self._n_acked, self._commit_every = 0, None
        self.should_stop = False
        self._stopped = asyncio.Event()
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
        self.suspend_flow = asyncio.Event()
        self.log = SimpleNamespace(warning=lambda *args: None, dev=lambda *args: None)
        self.consumer_stopped_errors = ()
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=True))

    def getmany(self, timeout: float) -> Any:
        fetched = self.fetches.pop(0) if self.fetches else []
        if not fetched:
            self._stopped.set()  # nothing more to fetch: the loop ends

        async def records() -> Any:
            for offset in fetched:
                yield EVENTS, SimpleNamespace(offset=offset, topic="events", key=b"", value=b"")

        return records()

    async def callback(self, message: Any) -> None:
        self.delivered.append(message.offset)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append(offset)
        self._read_offset[tp] = offset  # as Faust's seek does
        self.fetches.insert(0, [o for o in self._log if o >= offset])

    async def _add_gap(self, tp: TP, start: int, end: int) -> None:
        self.gaps.append((start, end))


async def drained(consumer: Consumer) -> Consumer:
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    await drain_messages(consumer, fetcher)  # type: ignore[arg-type]
    return consumer


async def test_records_the_fetch_skipped_are_read_again_not_counted_as_a_gap() -> None:
    log = list(range(10, 20))  # the partition holds 10..19; 12..14 never came
    consumer = await drained(Consumer(log, [[10, 11, 15, 16]], read_offset=9))
    assert consumer.sought == [12]
    assert consumer.delivered == log and consumer.gaps == []


async def test_a_gap_that_comes_again_is_real_and_counted_once() -> None:
    log = [10, 11, 15, 16]  # 12..14: compacted away, or transaction markers
    consumer = await drained(Consumer(log, [[10, 11, 15, 16]], read_offset=9))
    assert consumer.sought == [12]  # once
    assert consumer.delivered == log and consumer.gaps == [(12, 15)]


def test_after_a_seek_the_committed_record_must_come_first() -> None:
    # Faust's perform_seek records the committed offset (the next to read) as the last one
    # read: a first record one past it would look like no gap at all
    stream, changelog = TP("events", 0), TP("app-runs-changelog", 0)
    consumer = SimpleNamespace(_read_offset={stream: 40, changelog: 7, TP("events", 1): None})
    recovery = SimpleNamespace(_is_changelog_tp=lambda tp: tp.topic.endswith("changelog"))
    SeekThenResumeRecovery.read_from_committed(recovery, consumer, set(consumer._read_offset))  # type: ignore[arg-type]
    assert consumer._read_offset == {stream: 39, changelog: 7, TP("events", 1): None}
