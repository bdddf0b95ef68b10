"""Pages to webhooks: a queue per webhook, so a slow or hung receiver delays only itself.

Each webhook has its own bounded queue, its own HTTP client and at most ``concurrency``
requests in flight. A page it does not take is retried with backoff (doubling, jittered, up
to a minute) without holding a request slot meanwhile, until the receiver takes it, refuses
it for good (a 4xx other than 408/409/425/429), or the page is older than ``max_age_s``
(expired: logged and counted, never sent: a page about a failure long past pages nobody
usefully).

Messages of one incident keep their order at each webhook: a resolve is sent once its
trigger is done (delivered, refused or expired), whatever retries the trigger needed.

Two callers offer pages. The worker that raised a page offers it at once (``page_now``: no
broker hop between the failure and the page, nothing waits for it; a full queue is skipped).
The notify agent offers every page of its deployment it reads on the alerts topic
(``offer``), waiting for room, and acknowledges the message once every webhook is done with
it: what a crash interrupts is delivered by the next worker. The same page offered twice is
one delivery (both callers get the same future), and a page finished recently is not sent
again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from lineage_faust.settings import Delivery, Webhook, webhook_of
from lineage_faust.worker.webhooks import DELIVERED, REFUSED, post, request

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0
FINISHED_KEPT = 10_000  # finished pages remembered per webhook, to skip one offered again
# a page offered at once and not read back by the notify agent within this long is read back
# elsewhere (its partition moved in a rebalance): a stopping worker does not wait for it
UNCLAIMED_FOR_S = 30.0

EXPIRED = "expired"  # what became of a page besides DELIVERED and REFUSED


def raised_at(alert: Mapping[str, Any]) -> float:
    """When the alert was first raised, in epoch seconds (the alert's ``raisedAt``)."""
    return datetime.fromisoformat(alert["raisedAt"]).timestamp()


@dataclass(eq=False, slots=True)
class Pending:
    alert_id: str
    body: Any
    headers: dict[str, str]
    raised_at: float  # epoch seconds
    done: asyncio.Future[str]
    incident_id: str | None = None
    after: asyncio.Future[str] | None = None  # the incident's message before it, if unfinished
    queued_at: float = field(default_factory=time.monotonic)
    attempts: int = 0
    delay_s: float = FIRST_BACKOFF_S


class WebhookQueue:
    """One webhook's pages: queued, waiting for a retry or in flight."""

    def __init__(
        self,
        number: int,
        webhook: Webhook,
        options: Delivery,
        metrics: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.number = number  # its position in LINEAGE_WEBHOOKS: the URL may hold a secret
        self.webhook, self.url, self.options = webhook, webhook.url, options
        self.metrics, self.clock = metrics, clock
        self.pending: dict[str, Pending] = {}  # by alert id, oldest first
        self.posting = 0  # requests in flight now
        self.finished: collections.OrderedDict[str, str] = collections.OrderedDict()
        # per incident, its latest unfinished message: a resolve waits for its trigger
        self.last_of_incident: dict[str, Pending] = {}
        self.on_finish: Callable[[], None] = lambda: None
        self._ready: asyncio.Queue[Pending] | None = None
        self._client: httpx.AsyncClient | None = None
        self._workers: list[asyncio.Task] = []
        if metrics is not None:
            label = str(number)
            metrics.webhook_queued.labels(label).set_function(lambda: len(self.pending))
            metrics.webhook_oldest.labels(label).set_function(self.oldest_waiting_s)

    # ---- what callers see ---------------------------------------------------------------
    def has_room(self) -> bool:
        return len(self.pending) < self.options.queue

    def oldest_waiting_s(self) -> float:
        oldest = next(iter(self.pending.values()), None)
        return time.monotonic() - oldest.queued_at if oldest else 0.0

    def offer(self, alert: Mapping[str, Any]) -> asyncio.Future[str] | None:
        """The page's future (what became of it here), or None when the queue is full."""
        alert_id = alert["alertId"]
        if (queued := self.pending.get(alert_id)) is not None:
            return queued.done
        loop = asyncio.get_running_loop()
        if (outcome := self.finished.get(alert_id)) is not None:
            return _resolved(loop, outcome)
        at = raised_at(alert)
        if self._expired(at):
            self._log_expired(alert_id, 0)
            self._finish_early(alert_id, EXPIRED)
            return _resolved(loop, EXPIRED)
        if not self.has_room():
            return None
        body, headers = request(alert, self.webhook)
        incident = alert.get("incidentId")
        entry = Pending(alert_id, body, headers, at, loop.create_future(), incident)
        if incident:
            before = self.last_of_incident.get(incident)
            if before is not None and not before.done.done():
                entry.after = before.done
            self.last_of_incident[incident] = entry
        self.pending[alert_id] = entry
        self._start()
        assert self._ready is not None
        self._ready.put_nowait(entry)
        return entry.done

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- the work -----------------------------------------------------------------------
    def _start(self) -> None:
        if self._workers:
            return
        self._ready = asyncio.Queue()
        # a client of its own: a hung receiver holds only its own connections
        self._client = httpx.AsyncClient(
            timeout=self.options.timeout_s,
            limits=httpx.Limits(
                max_connections=self.options.concurrency,
                max_keepalive_connections=self.options.concurrency,
            ),
        )
        self._workers = [
            asyncio.ensure_future(self._work()) for _ in range(self.options.concurrency)
        ]

    async def _work(self) -> None:
        assert self._ready is not None and self._client is not None
        while True:
            entry = await self._ready.get()
            if entry.after is not None and not entry.after.done():
                # the incident's earlier message first (a resolve after its trigger)
                entry.after.add_done_callback(lambda _, e=entry: self._ready.put_nowait(e))
                continue
            try:
                await self._attempt(entry)
            except Exception:  # a bug here must not stop this webhook's deliveries
                log.exception("webhook %d: page %s could not be tried", self.number, entry.alert_id)
                self._retry_later(entry)

    async def _attempt(self, entry: Pending) -> None:
        if self._expired(entry.raised_at):
            self._log_expired(entry.alert_id, entry.attempts)
            self._finish(entry, EXPIRED)
            return
        entry.attempts += 1
        assert self._client is not None
        self.posting += 1
        try:
            outcome = await post(self._client, self.url, entry.body, entry.headers)
        finally:
            self.posting -= 1
        if outcome == DELIVERED:
            if self.metrics is not None:
                waited = time.monotonic() - entry.queued_at
                self.metrics.webhook_latency.labels(str(self.number)).observe(waited)
            self._finish(entry, DELIVERED)
        elif outcome == REFUSED:
            log.error("webhook %d refused page %s for good", self.number, entry.alert_id)
            self._finish(entry, REFUSED)
        else:
            log.warning(
                "webhook %d: page %s not delivered (%s), try %d; again in %.1f s",
                self.number,
                entry.alert_id,
                outcome,
                entry.attempts,
                entry.delay_s,
            )
            self._count("retried")
            self._retry_later(entry)

    def _retry_later(self, entry: Pending) -> None:
        delay, entry.delay_s = entry.delay_s, min(entry.delay_s * 2, MAX_BACKOFF_S)
        assert self._ready is not None
        asyncio.get_running_loop().call_later(
            delay * (0.8 + 0.4 * random.random()), self._ready.put_nowait, entry
        )

    def _log_expired(self, alert_id: str, attempts: int) -> None:
        log.warning(
            "webhook %d: page %s expired after %d tries (raised more than %.0f s ago): not sent",
            self.number,
            alert_id,
            attempts,
            self.options.max_age_s,
        )

    def _expired(self, at: float) -> bool:
        return self.clock() - at > self.options.max_age_s

    def _finish(self, entry: Pending, outcome: str) -> None:
        del self.pending[entry.alert_id]
        if entry.incident_id and self.last_of_incident.get(entry.incident_id) is entry:
            del self.last_of_incident[entry.incident_id]
        self._finish_early(entry.alert_id, outcome)
        if not entry.done.done():
            entry.done.set_result(outcome)
        self.on_finish()

    def _finish_early(self, alert_id: str, outcome: str) -> None:
        self.finished[alert_id] = outcome
        if len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)
        self._count(outcome)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels(str(self.number), outcome).inc()


def _resolved(loop: asyncio.AbstractEventLoop, outcome: str) -> asyncio.Future[str]:
    future = loop.create_future()
    future.set_result(outcome)
    return future


class Deliveries:
    """Every webhook's queue; a page is offered to all of them."""

    def __init__(
        self,
        urls: tuple[str, ...],
        fmt: str,
        options: Delivery,
        metrics: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queues = [
            WebhookQueue(number, webhook_of(url, number, fmt), options, metrics, clock)
            for number, url in enumerate(urls, 1)
        ]
        self._room: asyncio.Event | None = None
        # pages offered at once whose alert message the notify agent has not read back yet,
        # and when (monotonic)
        self.unclaimed: collections.OrderedDict[str, float] = collections.OrderedDict()
        for queue in self.queues:
            queue.on_finish = self._made_room

    def page_now(self, alert: Mapping[str, Any]) -> None:
        """Offer a page just raised to every webhook with room; nothing waits for it."""
        if alert.get("paged"):
            for queue in self.queues:
                queue.offer(alert)
            self.unclaimed[alert["alertId"]] = time.monotonic()
            if len(self.unclaimed) > FINISHED_KEPT:  # read back elsewhere (a rebalance)
                self.unclaimed.popitem(last=False)

    async def offer(self, alert: Mapping[str, Any]) -> asyncio.Future:
        """Offer a page to every webhook, waiting while one is full; the future resolves
        once every webhook is done with it (delivered, refused for good, or expired)."""
        self.unclaimed.pop(alert["alertId"], None)
        while True:
            offered = [queue.offer(alert) for queue in self.queues]
            if all(f is not None for f in offered):
                return asyncio.gather(*offered)  # type: ignore[arg-type]
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    async def settle(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until the notify agent has read back every page
        offered at once and no request is in flight: a worker told to stop has its pages
        acknowledged, not sent again by the next worker. Pages waiting for a retry stay
        unacknowledged: the next worker sends them."""
        now = time.monotonic()
        deadline, recent = now + timeout_s, now - UNCLAIMED_FOR_S
        while time.monotonic() < deadline and (
            any(q.posting for q in self.queues)
            or any(at > recent for at in self.unclaimed.values())
        ):
            await asyncio.sleep(0.02)

    def _made_room(self) -> None:
        if self._room is not None:
            self._room.set()

    async def close(self) -> None:
        await asyncio.gather(*(queue.close() for queue in self.queues))
