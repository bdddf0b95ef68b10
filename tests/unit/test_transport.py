"""Which Faust transport the worker uses, and the fetch wait its consumer gets.

The latency itself is measured by ``python -m bench.freshness`` (not timed here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from lineage_faust.faust_patches.delivery import drain_messages
from lineage_faust.faust_patches.transport import EmbeddedTransport, Transport
from lineage_faust.settings import EMBEDDED_FETCH_MAX_WAIT_MS, parse_settings
from lineage_faust.store.sqlite.store import SQLiteStore
from lineage_faust.worker.app import make_app


@pytest.mark.parametrize(
    ("embedded", "transport", "wait_ms"),
    [("1", EmbeddedTransport, EMBEDDED_FETCH_MAX_WAIT_MS), ("0", Transport, 1500)],  # Faust's
)
async def test_worker_consumer_fetch_wait(
    tmp_path: Path, embedded: str, transport: type | None, wait_ms: int
) -> None:
    settings = parse_settings(
        {
            "LINEAGE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "LINEAGE_EMBEDDED_BROKER": embedded,
            "LINEAGE_DATA_DIR": str(tmp_path),
        }
    )
    app = make_app(settings, SQLiteStore(tmp_path / "lineage.db"))
    assert type(app.transport) is transport
    assert app.consumer._drain_messages.__func__ is drain_messages  # eager delivery, both
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == wait_ms
    finally:
        await consumer.stop()


async def test_aiokafka_keeps_the_fetch_wait_where_the_transport_sets_it() -> None:
    """The transport overrides a private aiokafka attribute: fail loudly if it moves."""
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", fetch_max_wait_ms=123)
    try:
        assert consumer._fetch_max_wait_ms == 123
    finally:
        await consumer.stop()
