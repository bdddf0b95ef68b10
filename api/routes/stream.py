"""The live stream: run-state changes and alerts as Server-Sent Events, as they happen.

Fed from the worker's live topic (one partition; see lineage_faust/domain/live.py), not by
polling the store. Every event's id is ``<offset>-<index>``: a client that reconnects with
``Last-Event-ID`` (browsers' EventSource do so by themselves) resumes right after the last
event it saw, so no change made while it was away is lost (within the topic's retention).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from lineage_faust.domain.live import event_id, parse_event_id
from lineage_faust.kafka.security import client_options

from ..errors import ApiError
from .common import errors
from .runs import State

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["live"])
HEARTBEAT_S = 15


def matches(
    item: dict[str, Any], namespace: str | None, job: str | None, state: str | None
) -> bool:
    return (
        (namespace is None or item.get("namespace") == namespace)
        and (job is None or item.get("job") == job)
        and (state is None or item.get("state") == state)
    )


def stream_items(offset: int, value: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    """(event id, event name, data) of one live-topic message, in order."""
    message = orjson.loads(value)
    items = [("run", c) for c in message.get("changes", [])]
    items += [("alert", a) for a in message.get("alerts", [])]
    return [(event_id(offset, i), name, data) for i, (name, data) in enumerate(items)]


@router.get(
    "/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events `run` (a run entered a state) and `alert`; comments as "
            "heartbeats every 15 s",
        },
        **errors(400, 401, 503),
    },
)
async def stream(
    request: Request,
    namespace: str | None = None,
    job: str | None = None,
    state: State | None = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
    lastEventId: Annotated[
        str | None, Query(max_length=64, description="Resume after this event (as the header)")
    ] = None,
) -> EventSourceResponse:
    """Run-state changes and alerts, live, optionally only of one namespace/job/state."""
    settings = request.app.state.settings
    if not settings.kafka_bootstrap:
        raise ApiError(503, "the live stream needs the broker (LINEAGE_KAFKA_BOOTSTRAP)")
    resume = parse_event_id(last_event_id or lastEventId)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        client_id="lineage-api-stream",
        fetch_max_wait_ms=settings.fetch_max_wait_ms or 500,  # 500: aiokafka's default
        **client_options(settings.kafka_security),
    )
    tp = TopicPartition(settings.live_topic, 0)
    try:
        await consumer.start()
        consumer.assign([tp])
        if resume is not None:
            consumer.seek(tp, resume[0])
        else:
            await consumer.seek_to_end(tp)
    except KafkaError as exc:
        await consumer.stop()
        reason = type(exc).__name__
        raise ApiError(503, f"the live stream's broker is unavailable ({reason})") from None
    wanted = state.value if state else None

    async def events() -> AsyncIterator[dict[str, str]]:
        gone = False
        try:
            while not await request.is_disconnected():
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    for item_id, name, data in stream_items(record.offset, record.value):
                        position = parse_event_id(item_id)
                        if resume is not None and position is not None and position <= resume:
                            continue
                        if matches(data, namespace, job, wanted):
                            text = orjson.dumps(data).decode()
                            yield {"id": item_id, "event": name, "data": text}
                            # Let the loop see a closed connection before the next write:
                            # a replay of thousands of events yields without ever waiting,
                            # and each write to a dead socket logged a warning.
                            await asyncio.sleep(0)
                            if await request.is_disconnected():
                                gone = True
                                return
            gone = True
        except asyncio.CancelledError:  # sse-starlette saw the client leave first
            gone = True
            raise
        finally:
            if gone:
                log.debug("live stream: the client went away; stopped")
            await consumer.stop()

    return EventSourceResponse(events(), ping=HEARTBEAT_S)
