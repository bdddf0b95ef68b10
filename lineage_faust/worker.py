"""Run the stream processor: make sure topics and store exist, then start a Faust worker."""

from __future__ import annotations

import asyncio
import logging

import faust

from .app import make_app
from .config import Settings
from .store import Store, open_store
from .topics import ensure_topics

log = logging.getLogger(__name__)


async def prepare(settings: Settings, store: Store) -> None:
    await ensure_topics(
        settings.bootstrap, {settings.topic: settings.partitions, settings.dlq_topic: 1}
    )
    await store.open()


def run_worker(settings: Settings, *, table_store: str = "rocksdb://") -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    store = open_store(settings.store_url)
    loop.run_until_complete(prepare(settings, store))
    app = make_app(settings, store, table_store=table_store)
    log.info(
        "worker: broker %s, topic %s, dead letters %s, store %s",
        settings.bootstrap, settings.topic, settings.dlq_topic, settings.describe_store(),
    )  # fmt: skip
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level)
    try:
        worker.execute_from_commandline()
    finally:
        if not loop.is_closed():
            loop.run_until_complete(store.close())
