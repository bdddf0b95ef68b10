"""The freshness sweep: datasets that outlived their expectation raise ``stale`` (once per
lapse), and ``fresh`` when written again. Run by the worker that owns run-updates partition 0,
on its sweep (``track_runs``): one worker judges each dataset once per sweep interval.

Crash-safe in this order: the alerts are recorded in the outbox first (their ids come from
the lapse, so a sweep after a crash raises the same ones), then the lapses are opened and
closed, then the alerts published.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

from lineage_faust.domain.alerting import Alert
from lineage_faust.domain.freshness import (
    Lapse,
    LastWrite,
    expectation_for,
    fresh_alert,
    is_stale,
    stale_alert,
)
from lineage_faust.store.dataset_history import last_good_write
from lineage_faust.worker.state import WorkerState

log = logging.getLogger(__name__)


class DatasetWatch:
    def __init__(self, state: WorkerState, publish: Callable[[list[Alert]], Awaitable[None]]):
        """``publish``: sends alerts the outbox returned, then marks them published."""
        self.state, self.publish = state, publish

    async def sweep(self, now: datetime | None = None) -> None:
        w = self.state
        expectations = w.settings.dataset_expectations
        if not expectations:
            return
        now = now or datetime.now(UTC)
        store = w.store
        lapses = {
            (lapse.write.namespace, lapse.write.name): lapse
            for lapse in await w.retrying("read lapses", store.open_lapses)
        }
        datasets = await w.retrying("read datasets", store.written_datasets)
        alerts: list[Alert] = []
        opened: list[Lapse] = []
        closed: list[tuple[str, str]] = []
        for namespace, name in datasets:
            expectation = expectation_for(f"{namespace}/{name}", expectations)
            lapse = lapses.pop((namespace, name), None)
            if expectation is None:
                if lapse is not None:  # its expectation was removed
                    closed.append((namespace, name))
                continue
            write: LastWrite | None = await w.retrying(
                "read last write", partial(last_good_write, store, namespace, name)
            )
            if write is None:
                continue
            if lapse is not None:
                if write.at <= lapse.write.at:
                    continue  # still stale: paged once already
                alerts.append(fresh_alert(lapse, write, now))
                closed.append((namespace, name))
            if is_stale(write, expectation, now):
                opened.append(Lapse(write, expectation.max_age_s, now))
                alerts.append(stale_alert(write, expectation, now))
        closed.extend(lapses)  # datasets no longer in the store
        if not alerts and not closed:
            return
        pending = await w.record_alerts(alerts)
        reopened = {(lapse.write.namespace, lapse.write.name) for lapse in opened}
        for namespace, name in closed:
            if (namespace, name) not in reopened:
                await w.retrying("close lapse", partial(store.close_lapse, namespace, name))
        for lapse in opened:
            await w.retrying("open lapse", partial(store.open_lapse, lapse))
        if opened or closed:
            log.info("freshness: %d datasets stale, %d lapses closed", len(opened), len(closed))
        await self.publish(pending)
