"""The Kafka producer settings shared by ``lineage-faust send`` and the API's HTTP ingest."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from lineage_faust.kafka.security import client_options
from lineage_faust.settings import Settings


def event_producer(settings: Settings, *, request_timeout_ms: int = 30_000) -> AIOKafkaProducer:
    """A producer for the events topic: acknowledged by every in-sync replica (acks=all)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=settings.producer_max_request_bytes,
        request_timeout_ms=request_timeout_ms,
        **client_options(settings.kafka_security),
    )
