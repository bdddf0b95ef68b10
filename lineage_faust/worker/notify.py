"""The notify agent: every page of this deployment on the alerts topic, to the webhooks.

The worker that raised a page has offered it to the webhooks already (``Deliveries.page_now``);
an alert goes to its run's partition, which that worker owns, so here it usually finds the
page queued or delivered and only waits for it. What it does not find (a page raised before
a crash or a rebalance, or one a full queue could not take) it offers now. A message is
acknowledged once every webhook is done with its page, so a crash loses none.

Only this deployment's pages are sent (the ``lineage.app`` header): a topic shared with other
deployments, or read from its start by a new consumer group, never pages anyone for another
deployment's failures. A page older than ``LINEAGE_PAGE_MAX_AGE`` is expired, not sent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson

from lineage_faust.domain.alerting import APP_HEADER
from lineage_faust.worker.deliveries import Deliveries

log = logging.getLogger(__name__)


class Notify:
    def __init__(self, deliveries: Deliveries, app_id: str, metrics: Any = None) -> None:
        self.deliveries = deliveries
        self.app_id = app_id.encode()
        self.metrics = metrics
        self._acking: set[asyncio.Task] = set()

    async def run(self, stream: faust.StreamT) -> None:
        """The agent's body."""
        manual = stream.noack()
        async for event in manual.events():
            done = await self.page_of(event.message)
            if done is None:
                await manual.ack(event)
            else:  # acknowledged once delivered; meanwhile the next page goes on
                done.add_done_callback(lambda _, event=event: self._ack(manual, event))

    async def page_of(self, message: Any) -> asyncio.Future | None:
        """The delivery of the message's page, or None when there is nothing to send."""
        if dict(_headers(message.headers)).get(APP_HEADER) != self.app_id:
            if self.metrics is not None:
                self.metrics.foreign_alerts.inc()
            return None
        try:
            alert = orjson.loads(message.value)
        except orjson.JSONDecodeError:
            log.error("undecodable alert at offset %d, skipped", message.offset)
            return None
        if not alert.get("paged"):
            return None
        return await self.deliveries.offer(alert)

    async def settle(self, timeout_s: float) -> None:
        """Before the worker's last commit: let pages in flight end and be acknowledged."""
        await self.deliveries.settle(timeout_s)
        await asyncio.sleep(0)  # the done callbacks of what just ended schedule their acks
        if self._acking:
            await asyncio.wait(list(self._acking), timeout=timeout_s)

    def _ack(self, manual: faust.StreamT, event: faust.EventT) -> None:
        task = asyncio.ensure_future(manual.ack(event))
        self._acking.add(task)
        task.add_done_callback(self._acking.discard)


def _headers(headers: object) -> list[tuple[str, bytes]]:
    # a message's headers come as a list of pairs (or a mapping, depending on the client)
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or ())
