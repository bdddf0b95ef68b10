"""What the worker's agents, timers and pages share: one object, no closure variables.

Nothing here depends on Faust: the run-state orchestration (``run_states.py``) runs on it in
unit tests without a broker.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from lineage_faust.domain.alerting import Alert
from lineage_faust.failures import describe, is_permanent
from lineage_faust.retry import retry_forever
from lineage_faust.settings import Settings
from lineage_faust.store import Store, StoreRefused
from lineage_faust.worker.accounting import Health, Stats
from lineage_faust.worker.sends import SendEachOnce
from lineage_faust.worker.store_writes import write_refusing

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class LiveIndex:
    """What the worker knows of its partitions of the live run table, kept as it writes:
    finished runs waiting to leave it (oldest first), runs by state (the /metrics gauge) and
    unfinished runs (stuck and overdue checks). A partition is indexed by one pass over the
    table the first time it is swept after start or assignment."""

    queues: dict[int, collections.deque[tuple[float, str]]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    indexed: set[int] = field(default_factory=set)
    live: dict[int, collections.Counter[str]] = field(default_factory=dict)
    running: dict[int, set[str]] = field(default_factory=dict)

    def live_total(self) -> collections.Counter[str]:
        return sum(self.live.values(), collections.Counter())

    def forget(self, partition: int) -> None:
        self.indexed.discard(partition)
        self.queues.pop(partition, None)
        self.live.pop(partition, None)
        self.running.pop(partition, None)


@dataclass(slots=True)
class WorkerState:
    settings: Settings
    store: Store
    stats: Stats = field(default_factory=Stats)
    health: Health = field(default_factory=Health)
    index: LiveIndex = field(default_factory=LiveIndex)
    # run-updates partition -> offset after ingest's last message to it
    updates_sent: dict[int, int] = field(default_factory=dict)
    # this worker's run-updates partitions -> offset after track_runs' last finished one
    updates_done: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[Any, int] = field(default_factory=dict)  # per topic partition

    def retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return retry_forever(what, attempt, health=self.health)

    async def send_each_once(self, what: str, sender: SendEachOnce) -> list[Any]:
        """Send (retrying while the broker is away); a topic that refuses every message for
        good (invalid, not authorised) is reported and passed by: the pipeline moves on."""
        try:
            return await self.retrying(what, sender.send)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            self.health.refused(what, exc)
            log.error("%s: refused for good (%s); moving on", what, describe(exc))
            return []

    async def store_rows(
        self, what: str, write: Callable[[Sequence[Any]], Awaitable[T]], rows: Sequence[Any]
    ) -> list[T]:
        """Write ``rows``, waiting while the store is away; rows it refuses for good are
        logged and left out (each result of the writes that went through is returned)."""
        results, refused = await self.retrying(what, partial(write_refusing, write, rows, what))
        if refused:
            self.health.refused(what, StoreRefused(next(iter(refused.values()))))
            log.error("%s: the store refused %d rows for good; left out", what, len(refused))
        return results

    async def record_alerts(self, alerts: list[Alert]) -> list[Alert]:
        """The alerts recorded in the store's outbox that still have to be published."""
        results = await self.store_rows("record alerts", self.store.record_alerts, alerts)
        return [alert for pending in results for alert in pending]

    def updates_lag(self) -> int:
        """Run-updates messages ingest sent to this worker's partitions that track_runs has not
        finished yet (a partition counts once track_runs finished a message of it). Counted to
        the end of track_runs' work, not to its receipt: messages fetched and queued for it
        (hundreds, under a backlog) are the backlog too."""
        return sum(
            max(0, self.updates_sent.get(partition, 0) - done)
            for partition, done in self.updates_done.items()
        )

    def note_offset(self, message: Any) -> None:
        """Count offsets a stream skipped. Every message of our topics has an offset of its
        own, so a jump means Faust dropped messages (recovery.py fixes the race found so)."""
        expected = self.next_offsets.get(message.tp)
        if expected is not None and message.offset > expected:
            self.stats.metrics.offset_gaps.labels(message.topic).inc(message.offset - expected)
            log.warning(
                "%s[%d]: offsets %d..%d were never delivered to the agent",
                message.topic,
                message.partition,
                expected,
                message.offset - 1,
            )
        self.next_offsets[message.tp] = message.offset + 1
