"""send_table_changes cancelled mid-group: by a rebalance the unsent records go back to
Faust's buffer, in order; while the worker stops it sends them itself, unless its producer is
stopping too (then they are logged as not sent: the unacknowledged group is folded again).
The end-to-end check is tests/test_changelog.py; this pins the three cancellation paths."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from lineage_faust.changelog import send_table_changes


class Channel:
    """Publishes instantly, except that the publish of ``stall_at`` waits until cancelled."""

    def __init__(self, stall_at: str) -> None:
        self.stall_at = stall_at
        self.published: list[str] = []
        self.stalled = asyncio.Event()

    async def publish_message(self, future: SimpleNamespace, wait: bool) -> None:
        assert wait is False
        if future.key == self.stall_at and not self.stalled.is_set():
            self.stalled.set()
            await asyncio.Event().wait()
        self.published.append(future.key)


def app_with_records(keys: list[str], channel: Channel) -> SimpleNamespace:
    pending: asyncio.Queue = asyncio.Queue()
    for key in keys:
        pending.put_nowait(SimpleNamespace(key=key, message=SimpleNamespace(channel=channel)))
    producer = SimpleNamespace(buffer=SimpleNamespace(pending=pending), should_stop=False)
    return SimpleNamespace(producer=producer, should_stop=False)


async def cancel_at_stall(app: SimpleNamespace, channel: Channel, stopping: bool) -> None:
    task = asyncio.create_task(send_table_changes(app))
    await channel.stalled.wait()
    app.should_stop = stopping
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


KEYS = ["a", "b", "c", "d", "e"]


def test_a_rebalance_puts_the_unsent_records_back_in_order() -> None:
    async def scenario() -> None:
        channel = Channel(stall_at="c")
        app = app_with_records(KEYS, channel)
        await cancel_at_stall(app, channel, stopping=False)
        assert channel.published == ["a", "b"]
        pending = app.producer.buffer.pending
        assert [pending.get_nowait().key for _ in range(pending.qsize())] == ["c", "d", "e"]

    asyncio.run(scenario())


def test_a_stopping_worker_sends_the_rest_itself() -> None:
    async def scenario() -> None:
        channel = Channel(stall_at="c")
        app = app_with_records(KEYS, channel)
        await cancel_at_stall(app, channel, stopping=True)
        assert channel.published == KEYS
        assert app.producer.buffer.pending.empty()  # nothing left for Faust's stopped task

    asyncio.run(scenario())


def test_a_stopping_producer_leaves_the_rest_unsent_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        channel = Channel(stall_at="c")
        app = app_with_records(KEYS, channel)
        app.producer.should_stop = True
        await cancel_at_stall(app, channel, stopping=True)
        assert channel.published == ["a", "b"]
        assert app.producer.buffer.pending.empty()

    with caplog.at_level(logging.WARNING, logger="lineage_faust.changelog"):
        asyncio.run(scenario())
    assert "3 changelog records not sent" in caplog.text
