"""Pages to webhooks over real HTTP (receivers on loopback sockets): a queue per webhook, so
a hung receiver delays only itself; retries until taken; bounded; expired pages never sent."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from bench.receiver import HungReceiver, Receiver
from lineage_faust.settings import Delivery
from lineage_faust.worker import deliveries as deliveries_module
from lineage_faust.worker.deliveries import Deliveries
from lineage_faust.worker.metrics import WorkerMetrics


def page(n: int, raised: datetime | None = None) -> dict:
    at = raised or datetime.now(UTC)
    return {
        "alertId": f"alert-{n}",
        "kind": "failed",
        "severity": "critical",
        "paged": True,
        "runId": f"run-{n}",
        "raisedAt": at.isoformat(),
    }


async def wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(0.01)


async def test_a_hung_webhook_delays_only_itself() -> None:
    options = Delivery(concurrency=2, timeout_s=30.0)
    metrics = WorkerMetrics()
    with Receiver() as healthy, HungReceiver() as hung:
        deliveries = Deliveries((hung.url, healthy.url), "json", options, metrics)
        try:
            started = time.monotonic()
            for n in range(40):
                deliveries.page_now(page(n))
            await wait_for(lambda: len(healthy.accepted) == 40, 10, "the healthy webhook's pages")
            took = time.monotonic() - started
            assert sorted(healthy.accepted_ids()) == sorted(f"alert-{n}" for n in range(40))
            # the hung one holds its two connections and keeps the rest queued, in order
            await wait_for(lambda: hung.requests == 2, 5, "two requests at the hung webhook")
            hung_queue, healthy_queue = deliveries.queues
            assert len(hung_queue.pending) == 40 and not healthy_queue.pending
            assert took < 5.0, took  # nothing waited for the 30 s timeout
            text = metrics.render([], {}, {}).decode()
            assert 'lineage_worker_webhook_queued{webhook="1"} 40.0' in text
            assert 'lineage_worker_webhook_queued{webhook="2"} 0.0' in text
            assert (
                'lineage_worker_webhook_deliveries_total{outcome="delivered",webhook="2"} 40.0'
                in text
            )
            oldest = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('lineage_worker_webhook_oldest_waiting_seconds{webhook="1"}')
            ]
            assert oldest and oldest[0] > 0
        finally:
            await deliveries.close()


async def test_a_page_is_retried_until_the_webhook_takes_it(monkeypatch) -> None:
    monkeypatch.setattr(deliveries_module, "FIRST_BACKOFF_S", 0.05)
    with Receiver(failures_per_alert=3) as receiver:
        deliveries = Deliveries((receiver.url,), "json", Delivery())
        try:
            done = await deliveries.offer(page(1))
            assert await asyncio.wait_for(done, 10) == ["delivered"]
            assert receiver.tries["alert-1"] == 4 and receiver.accepted_ids() == ["alert-1"]
        finally:
            await deliveries.close()


async def test_the_same_page_offered_twice_is_sent_once() -> None:
    with Receiver() as receiver:
        deliveries = Deliveries((receiver.url,), "json", Delivery())
        try:
            deliveries.page_now(page(1))  # the raising worker
            first = await deliveries.offer(page(1))  # the notify agent, while it is in flight
            assert await asyncio.wait_for(first, 10) == ["delivered"]
            again = await deliveries.offer(page(1))  # read back after it was delivered
            assert await asyncio.wait_for(again, 1) == ["delivered"]
            await asyncio.sleep(0.2)
            assert receiver.tries["alert-1"] == 1
        finally:
            await deliveries.close()


async def test_a_full_queue_takes_no_more_and_the_notify_side_waits_for_room() -> None:
    options = Delivery(queue=5, concurrency=1, timeout_s=0.5)
    with HungReceiver() as hung:
        deliveries = Deliveries((hung.url,), "json", options, clock=time.time)
        try:
            for n in range(8):  # past the limit: three are not taken
                deliveries.page_now(page(n))
            [queue] = deliveries.queues
            assert sorted(queue.pending) == [f"alert-{n}" for n in range(5)]
            waiting = asyncio.ensure_future(deliveries.offer(page(7)))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # no room: waits
            queue.options = Delivery(queue=5, concurrency=1, max_age_s=0.0)  # all expire
            await asyncio.wait_for(waiting, 10)  # room made as the others expired
            assert await asyncio.wait_for(waiting.result(), 10) == ["expired"]
        finally:
            await deliveries.close()


async def test_an_old_page_expires_instead_of_being_sent() -> None:
    metrics = WorkerMetrics()
    with Receiver() as receiver:
        deliveries = Deliveries((receiver.url,), "json", Delivery(max_age_s=3600), metrics)
        try:
            old = page(1, datetime.now(UTC) - timedelta(hours=2))
            done = await deliveries.offer(old)
            assert await asyncio.wait_for(done, 5) == ["expired"]
            fresh = await deliveries.offer(page(2))
            assert await asyncio.wait_for(fresh, 5) == ["delivered"]
            assert receiver.accepted_ids() == ["alert-2"]
            text = metrics.render([], {}, {}).decode()
            assert (
                'lineage_worker_webhook_deliveries_total{outcome="expired",webhook="1"} 1.0' in text
            )
        finally:
            await deliveries.close()


async def test_a_page_that_grows_too_old_while_retried_expires(monkeypatch) -> None:
    monkeypatch.setattr(deliveries_module, "FIRST_BACKOFF_S", 0.05)
    now = [time.time()]
    with Receiver(failures_per_alert=1000) as receiver:
        deliveries = Deliveries(
            (receiver.url,), "json", Delivery(max_age_s=60), clock=lambda: now[0]
        )
        try:
            done = await deliveries.offer(page(1))
            await wait_for(lambda: receiver.tries["alert-1"] >= 2, 5, "two tries")
            now[0] += 120  # the receiver stayed down past the page's age
            assert await asyncio.wait_for(done, 5) == ["expired"]
            tries = receiver.tries["alert-1"]
            await asyncio.sleep(0.3)
            assert receiver.tries["alert-1"] == tries  # never tried again
        finally:
            await deliveries.close()


@pytest.mark.parametrize("fmt", ["json", "slack"])
async def test_each_format_reaches_the_receiver_with_the_alert_id(fmt: str) -> None:
    with Receiver() as receiver:
        deliveries = Deliveries((receiver.url,), fmt, Delivery())
        try:
            alert = {**page(1), "namespace": "ns", "job": "j", "state": "FAIL", "detail": "d"}
            assert await asyncio.wait_for(await deliveries.offer(alert), 5) == ["delivered"]
            [body] = receiver.accepted
            assert ("blocks" in body) == (fmt == "slack")
            assert receiver.tries["alert-1"] == 1
        finally:
            await deliveries.close()
