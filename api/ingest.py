"""The OpenLineage HTTP transport's side of ``POST /api/v1/lineage``: read a request body into
Kafka messages (pure), and forward them to the events topic (``Forwarder``).

A request is all or nothing: if any event in it is invalid, none is forwarded and the answer
lists what is wrong with each, so resending the corrected request is exact. (Forwarding the
valid part would be safe too, since the worker deduplicates by event id, but a client that
gets a 400 cannot tell what was kept.)
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lineage_faust.domain.keying import message_key
from lineage_faust.domain.model import Rejection, parse_event
from lineage_faust.kafka.producer import event_producer
from lineage_faust.retry import retry_forever
from lineage_faust.settings import Settings

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 15.0


class BodyError(ValueError):
    """The body as a whole is unusable (not JSON, not an event or array, empty)."""


class BodyTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Problem:
    index: int
    reason: str
    detail: str
    field: str | None

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "reason": self.reason,
            "detail": self.detail,
            "field": self.field,
        }


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip (or zlib) body, refusing to inflate past ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError(f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
    if not inflater.eof:
        raise BodyError("body is not valid gzip: truncated")
    return out


def read_events(body: bytes, max_event_bytes: int) -> tuple[list[Outgoing], list[Problem]]:
    """One event object or a JSON array of them -> messages keyed like the Kafka transport.

    A single event is forwarded byte for byte; array elements are re-serialised compactly
    (the event id does not change: it hashes the canonical JSON).
    """
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"body is not JSON: {exc}") from None
    if isinstance(decoded, dict):
        items = [(body, decoded)]
    elif isinstance(decoded, list):
        if not decoded:
            raise BodyError("body is an empty array: nothing to ingest")
        items = [(orjson.dumps(item), item) for item in decoded]
    else:
        raise BodyError(f"body is a JSON {type(decoded).__name__}; send an event or an array")
    outgoing, problems = [], []
    for index, (raw, item) in enumerate(items):
        parsed = parse_event(raw, max_event_bytes)
        if isinstance(parsed, Rejection):
            problems.append(Problem(index, parsed.reason, parsed.detail, parsed.field))
        else:
            outgoing.append(Outgoing(message_key(item), raw))
    return outgoing, problems


class BrokerUnavailable(RuntimeError):
    pass


class Forwarder:
    """A producer started in the background (the read API must not wait for the broker)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task | None = None

    @property
    def configured(self) -> bool:
        return self._settings.kafka_bootstrap is not None

    @property
    def ready(self) -> bool:
        return self._producer is not None

    def start(self) -> None:
        if self.configured:
            self._starting = asyncio.create_task(
                retry_forever("connect to the broker", self._connect, retry=KafkaError)
            )

    async def _connect(self) -> None:
        producer = event_producer(self._settings, request_timeout_ms=int(SEND_TIMEOUT_S * 1000))
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        log.info("api: HTTP ingest produces to %s on %s", self.topic, self._settings.bootstrap)

    async def stop(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, messages: list[Outgoing]) -> None:
        """Produce every message and wait until the broker acknowledged each one."""
        if self._producer is None:
            why = "starting" if self.configured else "not configured (LINEAGE_KAFKA_BOOTSTRAP)"
            raise BrokerUnavailable(f"the broker connection is {why}")
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                pending = [
                    await self._producer.send(self.topic, value=m.value, key=m.key)
                    for m in messages
                ]
                await asyncio.gather(*pending)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"the broker did not acknowledge: {exc!r}") from exc

    async def publish(
        self, topic: str, value: bytes, key: bytes, partition: int, headers: list
    ) -> None:
        """One message to ``topic``'s ``partition`` (an alert the worker's notify agent
        sends), waiting for the broker's acknowledgement."""
        if self._producer is None:
            why = "starting" if self.configured else "not configured (LINEAGE_KAFKA_BOOTSTRAP)"
            raise BrokerUnavailable(f"the broker connection is {why}")
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                sent = await self._producer.send(
                    topic, value=value, key=key, partition=partition, headers=headers
                )
                await sent
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"the broker did not acknowledge: {exc!r}") from exc
