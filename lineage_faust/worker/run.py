"""Run the stream processor: make sure topics and store exist, then start a Faust worker."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import sys
from functools import partial

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ConsistencyError

from lineage_faust.faust_patches import check_versions
from lineage_faust.kafka.topics import ensure_topics, worker_topics
from lineage_faust.retry import retry_forever
from lineage_faust.settings import Settings
from lineage_faust.store import Store, StoreError, store_for
from lineage_faust.worker.app import make_app
from lineage_faust.worker.triage_pool import TriagePool

log = logging.getLogger(__name__)
# httpx logs every request with its URL at INFO: a webhook's URL may hold a secret (Slack's
# do), and a storm of pages would flood the log
logging.getLogger("httpx").setLevel(logging.WARNING)


async def prepare(settings: Settings, store: Store) -> None:
    """Store first (a schema newer than the code stops here, before any consuming), then
    every topic, visible in the cluster's metadata before the consumer subscribes (topics.py).
    Both wait for an unreachable store or broker instead of giving up."""
    await retry_forever("open store", store.open, retry=StoreError)
    specs = worker_topics(settings)
    await retry_forever(
        "create topics",
        partial(
            ensure_topics,
            settings.bootstrap,
            specs,
            replication=settings.topic_replication,
            security=settings.kafka_security,
        ),
        retry=(KafkaError, TimeoutError),
    )


MAX_STATE_RESETS = 3
_RESETS_ENV = "LINEAGE_INTERNAL_STATE_RESETS"


def run_worker(settings: Settings) -> None:
    """Run until stopped. If the local table state no longer matches the broker, discard it
    and start again: the live table is a cache, rebuilt from its changelog and the store."""
    try:
        _run(settings)
    except ConsistencyError as exc:
        resets = int(os.environ.get(_RESETS_ENV, "0"))
        if resets >= MAX_STATE_RESETS:
            raise
        log.warning(
            "local table state does not match the broker (%s); discarding %s and restarting. "
            "Nothing is lost: the store is the durable record.",
            str(exc).splitlines()[0],
            settings.data_dir / "faust",
        )
        shutil.rmtree(settings.data_dir / "faust", ignore_errors=True)
        os.environ[_RESETS_ENV] = str(resets + 1)
        os.execv(sys.executable, [sys.executable, "-m", "lineage_faust", "worker"])


def _run(settings: Settings) -> None:
    check_versions()  # the Faust workarounds are for these versions only
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    store = store_for(settings)
    loop.run_until_complete(prepare(settings, store))
    # Faust creates its table directory without parents (the store may live elsewhere)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    triage_pool = TriagePool(
        settings.triage_processes,
        max_bytes=settings.max_event_bytes,
        partitions=settings.partitions,
        pack_text=store.pack_text,
        spill_root=settings.data_dir / "triage",
        log_level=settings.log_level,
        store=store.for_helper(),
    )
    triage_pool.start()
    app = make_app(settings, store, triage_pool=triage_pool)
    log.info(
        "worker: broker %s (%s), topic %s, dead letters %s, store %s",
        settings.bootstrap,
        settings.kafka_security.describe(),
        settings.topic,
        settings.dlq_topic,
        settings.describe_store(),
    )
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level)
    # What start-up built (modules, Faust, the models) lives as long as the process: out of
    # the collector's reach, a full collection no longer walks it (65 ms pauses before).
    gc.freeze()
    try:
        worker.execute_from_commandline()
    except SystemExit:
        # mode turns a crash into sys.exit(1); the reason is kept on the worker
        if isinstance(worker.crash_reason, ConsistencyError):
            raise worker.crash_reason from None
        raise
    finally:
        triage_pool.close()
        if not loop.is_closed():
            loop.run_until_complete(store.close())
