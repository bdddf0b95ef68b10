"""The trimmed Faust pieces (lean_faust.py): the same events as stock Faust, and the monitor
state Faust itself reads back still kept. The worker's end-to-end tests run through both."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
from faust.types import Message
from faust.types.tuples import TP

from lineage_faust.faust_patches.lean import LeanMonitor, RawSchema
from lineage_faust.settings import parse_settings
from lineage_faust.store.sqlite.store import SQLiteStore
from lineage_faust.worker.app import make_app

MESSAGES = [
    (b"run-1", b'{"eventType": "START"}', [("h", b"v")]),
    (None, b"\x00\xff not json", []),
    (b"", b"", []),
    (b"run-2", None, []),  # a tombstone: the events topic allows empty values
]


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    return faust.App(
        "lean-test",
        broker="kafka://127.0.0.1:9",
        store="memory://",
        datadir=str(tmp_path),
        key_serializer="raw",
        value_serializer="raw",
    )


@pytest.mark.parametrize(("key", "value", "headers"), MESSAGES)
async def test_raw_schema_decodes_as_stock_faust_does(
    app: faust.App, key: bytes | None, value: bytes | None, headers: list
) -> None:
    stock = app.topic("stock", allow_empty=True)
    raw = app.topic("raw", allow_empty=True, schema=RawSchema())
    message = Message("t", 3, 17, 1.0, 0, headers, key, value, None)
    expected = await stock.decode(message, propagate=True)
    event = await raw.decode(message, propagate=True)
    assert (event.key, event.value, event.headers, event.message) == (
        expected.key,
        expected.value,
        expected.headers,
        expected.message,
    )
    assert event.key == key and event.value == value and event.message is message


def test_lean_monitor_keeps_what_faust_reads_back() -> None:
    monitor = LeanMonitor()
    tp = TP("events", 2)
    message = Message("events", 2, 5, 1.0, 0, [], b"k", b"v", None)
    monitor.on_message_in(tp, 5, message)
    assert monitor.on_stream_event_in(tp, 5, object(), object()) is None
    monitor.on_stream_event_out(tp, 5, object(), object(), None)
    monitor.on_message_out(tp, 5, message)
    # the aiokafka driver's "stream idle" check reads this; without it every lagging
    # partition would be reported idle
    assert tp in monitor.stream_inbound_time
    monitor.on_tp_commit({tp: 6})
    monitor.track_tp_end_offset(tp, 9)
    assert monitor.tp_committed_offsets[tp] == 6 and monitor.tp_end_offsets[tp] == 9
    # and no per-message statistics pile up
    assert monitor.messages_received_total == 0 and monitor.events_total == 0


def test_the_worker_app_uses_both(tmp_path: Path) -> None:
    settings = parse_settings(
        {"LINEAGE_KAFKA_BOOTSTRAP": "127.0.0.1:9", "LINEAGE_DATA_DIR": str(tmp_path)}
    )
    app = make_app(settings, SQLiteStore(tmp_path / "lineage.db"))
    assert type(app.monitor) is LeanMonitor
    consumed = [agent.channel for agent in app.agents.values()]  # ingest and track_runs
    assert len(consumed) == 2 and all(isinstance(t.schema, RawSchema) for t in consumed)
