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
            hung_queue, healthy_queue = deliveries.queues
            # taken by the receiver, and its answers read (it records a page before answering)
            await wait_for(
                lambda: len(healthy.accepted) == 40 and not healthy_queue.pending,
                10,
                "the healthy webhook's pages",
            )
            took = time.monotonic() - started
            assert sorted(healthy.accepted_ids()) == sorted(f"alert-{n}" for n in range(40))
            # the hung one holds its two connections and keeps the rest queued, in order
            await wait_for(lambda: hung.requests == 2, 5, "two requests at the hung webhook")
            assert len(hung_queue.pending) == 40
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


def resolution(n: int, incident: str) -> dict:
    return {**page(n), "kind": "resolved", "severity": "info", "incidentId": incident}


async def test_a_resolve_waits_for_its_trigger_however_long_the_trigger_retries() -> None:
    """The trigger is refused three times (about 3.5 s of backoff); its resolve, offered
    right after, is taken at once by the receiver but sent only after the trigger. Another
    incident's page does not wait."""
    trigger = {**page(1), "incidentId": "inc-1"}
    other = {**page(3), "incidentId": "inc-2"}
    with Receiver(failures_for={"alert-1": 3}) as receiver:
        deliveries = Deliveries((receiver.url,), "json", Delivery())
        try:
            first = await deliveries.offer(trigger)
            then = await deliveries.offer(resolution(2, "inc-1"))
            meanwhile = await deliveries.offer(other)
            assert await asyncio.wait_for(meanwhile, 5) == ["delivered"]
            assert receiver.accepted_ids() == ["alert-3"]  # inc-1's resolve still waits
            await asyncio.wait_for(asyncio.gather(first, then), 15)
            assert receiver.accepted_ids() == ["alert-3", "alert-1", "alert-2"]
            assert receiver.tries["alert-2"] == 1
            statuses = [body["status"] for body in receiver.accepted]
            assert statuses == ["triggered", "triggered", "resolved"]
        finally:
            await deliveries.close()


async def test_pagerduty_gets_a_trigger_then_a_resolve_with_one_dedup_key() -> None:
    with Receiver() as receiver:
        url = f"pagerduty+{receiver.url}?routing_key=R0UT1NG&team=data"
        deliveries = Deliveries((url,), "json", Delivery())
        try:
            trigger = {
                **page(1),
                "incidentId": "inc-9",
                "namespace": "airflow",
                "job": "etl.load",
                "state": "FAIL",
                "detail": "run ended FAIL",
                "errorMessage": "boom",
                "runUrl": "https://ops/api/v1/runs/run-1",
                "incidentUrl": "https://ops/#incident/inc-9",
                "lineageUrl": "https://ops/#lineage/incident%3Ainc-9",
                "blastRadius": {"datasets": 3, "jobs": 2, "firstDatasets": ["db/a"]},
            }
            done = [await deliveries.offer(trigger), await deliveries.offer(resolution(2, "inc-9"))]
            assert await asyncio.wait_for(asyncio.gather(*done), 5) == [["delivered"]] * 2
            sent, resolved = receiver.accepted
            assert sent["routing_key"] == resolved["routing_key"] == "R0UT1NG"
            assert sent["dedup_key"] == resolved["dedup_key"] == "inc-9"
            assert (sent["event_action"], resolved["event_action"]) == ("trigger", "resolve")
            assert sent["payload"]["severity"] == "critical"
            assert sent["payload"]["source"] == "airflow/etl.load"
            details = sent["payload"]["custom_details"]
            assert details["blastRadius"]["jobs"] == 2
            assert details["downstream"] == "downstream: 3 datasets, 2 jobs (db/a)"
            assert details["errorMessage"] == "boom"
            assert details["failedTasks"] == [{"job": "airflow/etl.load", "runId": "run-1"}]
            assert {link["href"] for link in sent["links"]} == {
                "https://ops/api/v1/runs/run-1",
                "https://ops/#incident/inc-9",
                "https://ops/#lineage/incident%3Ainc-9",
            }
            assert deliveries.queues[0].url == f"{receiver.url}?team=data"  # key not in the URL
        finally:
            await deliveries.close()
