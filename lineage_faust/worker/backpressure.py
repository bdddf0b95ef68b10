"""Backpressure: stop fetching the events topic while track_runs trails ingest.

Ingest (parse, validate, store) runs about three times as fast as track_runs (fold, run
statuses, changelog) on small events. Under a backlog, ingest would run ahead and the
run-updates topic would fill with work track_runs has not done: run states would go stale
behind the stored events, and the worker's fetch buffers would hold ever fuller run-updates
partitions (the memory benchmark's RSS followed that lag, 250 -> 470 MB, and fell back once
ingest had read everything).

Ingest waiting for track_runs cannot do this: Faust's one fetcher delivers every topic's
messages, and once the events stream's queue is full it waits to put the next event there,
so a waiting ingest also stops track_runs' messages. Instead the events partitions are
*paused in aiokafka*: the fetcher stops fetching them, ingest finishes what is already queued,
and track_runs' messages keep flowing. aiokafka drops what it had fetched of a paused
partition without moving its position, so on resume fetching continues from the first
message not yet handed to Faust: nothing skipped, nothing twice.

The aiokafka consumer lives in Faust's consumer thread: pause and resume run there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import faust
from faust.types import TP

from lineage_faust.faust_patches.consumer import pause_or_resume

log = logging.getLogger(__name__)


def should_hold(lag: int, held: bool, high: int) -> bool:
    """Whether the events topic should be paused, given track_runs' lag in run-updates
    messages: paused above ``high``, resumed at ``high // 2`` or less (hysteresis: no
    pause/resume flapping at the threshold)."""
    return lag > high // 2 if held else lag > high


class EventsValve:
    """Pauses and resumes fetching the events topic's partitions assigned to this worker."""

    def __init__(
        self,
        app: faust.App,
        topic_name: str,
        lag: Callable[[], int],
        high: int,
        on_held: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.app = app
        self.topic_name = topic_name
        self.lag = lag
        self.high = high
        self.on_held = on_held  # seconds the topic was paused, reported at each resume
        self.paused: set[TP] = set()
        self._since = 0.0
        self._busy = False

    async def adjust(self) -> None:
        """Pause or resume as the lag now asks (ingest and track_runs call this after each
        batch and group, a timer every second)."""
        if self._busy:  # the call in progress looks at the lag again when it is done
            return
        self._busy = True
        try:
            # again after each change: the lag may have moved while the consumer thread worked
            while not self.app.rebalancing:
                hold = should_hold(self.lag(), bool(self.paused), self.high)
                if hold == bool(self.paused) or (hold and not self._assigned()):
                    break  # as it should be, or nothing of the events topic here to hold back
                await (self._pause() if hold else self._resume())
        except Exception:  # never a reason to crash an agent; tried again at the next call
            log.exception("could not pause or resume fetching the events topic")
        finally:
            self._busy = False

    def forget(self, revoked: Iterable[TP]) -> None:
        """A rebalance gives partitions new aiokafka state (unpaused): forget them."""
        self.paused.difference_update(revoked)
        if not self.paused:
            self._since = 0.0

    def _assigned(self) -> set[TP]:
        return {tp for tp in self.app.consumer.assignment() if tp.topic == self.topic_name}

    async def _pause(self) -> None:
        assigned = self._assigned()
        await self._in_consumer_thread("pause", assigned)
        self.paused = assigned
        self._since = time.monotonic()
        log.debug("events topic paused: track_runs trails by %d messages", self.lag())

    async def _resume(self) -> None:
        await self._in_consumer_thread("resume", self.paused)
        self.paused = set()
        if self._since:
            self.on_held(time.monotonic() - self._since)
            self._since = 0.0

    async def _in_consumer_thread(self, method: str, tps: set[TP]) -> None:
        await pause_or_resume(self.app, method, tps)
