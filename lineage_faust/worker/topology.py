"""The Faust app the worker runs: its settings, its topics and its live run table.

Data flow::

    openlineage.events --ingest--> store.events_by_run / non_run_events
                          |   `--> openlineage.events.dlq (+ store.dead_letters)
                          `--> <app>-run-updates (one message per owning partition per batch)
                                  --track_runs--> runs table (changelog) + store.run_status
                                                   `--> alerts topic, live topic
                                  openlineage.alerts --notify--> webhooks
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust

from lineage_faust.faust_patches.lean import LeanMonitor, RawSchema
from lineage_faust.faust_patches.recovery import (
    EmbeddedBrokerTableManager,
    SeekThenResumeTableManager,
)
from lineage_faust.faust_patches.transport import broker_url
from lineage_faust.kafka.security import tls_context
from lineage_faust.kafka.topics import RUNS_TABLE, updates_topic_name
from lineage_faust.settings import KafkaSecurity, Settings

log = logging.getLogger(__name__)
# Tansu holds a JoinGroup for half the session timeout: the embedded stack joins in ~1 s
EMBEDDED_SESSION_TIMEOUT_S = 2.0

UPDATES_BUFFER = 128  # run-updates messages waiting in memory, at most
# One rocksdb database per partition of the live table, which holds only the runs in flight
# (about 1 KB each). Faust's defaults allow each database 3 x 64 MB of write buffers and a
# 2 GB block cache; these keep the 8 of them to about 72 MB of native memory at most. A run
# is read back mostly from the memtables (its events come close together); an 8 MB block
# cache each only filled up slowly (64 MB after 300k runs in the memory benchmark), which
# showed as growth, and blocks it misses are in the OS page cache anyway.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 1024 * 1024,
}


@dataclass(frozen=True, slots=True)
class Topology:
    app: App
    events: faust.TopicT  # input
    dlq: faust.TopicT  # dead letters
    alerts: faust.TopicT  # every alert (the notify agent's input)
    live: faust.TopicT  # run-state changes and alerts for the live stream
    updates: faust.TopicT  # internal: a batch's run updates per owning partition
    runs: Any  # the live run table (rocksdb + changelog), keyed by runId


def faust_credentials(security: KafkaSecurity) -> faust.types.CredentialsT | None:
    """The app's ``broker_credentials``: the connection every other client makes
    (``kafka/security.py``), as Faust takes it (None: plaintext)."""
    context = tls_context(security) if security.uses_tls else None
    if security.uses_sasl:
        assert security.sasl_mechanism is not None
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            ssl_context=context,
            mechanism=security.sasl_mechanism.value,
        )
    return faust.SSLCredentials(context) if context is not None else None


class App(faust.App):
    """Faust's app, with work to finish before it stops consuming (``before_stop``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_stop: list[Callable[[], Awaitable[None]]] = []

    async def on_stop(self) -> None:
        # Faust's on_stop first stops fetching, then commits once the children stop
        for finish in self.before_stop:
            try:
                await finish()
            except Exception:  # stopping goes on whatever happens here
                log.exception("finishing before the worker stops failed")
        await super().on_stop()


def faust_app(settings: Settings) -> App:
    return App(
        settings.app_id,
        broker=broker_url(settings),
        broker_credentials=faust_credentials(settings.kafka_security),
        store="rocksdb://",  # the live table: table_writes.py writes its rocksdb directly
        # see recovery.py: Faust's resume/seek race, and the embedded broker's end offsets
        TableManager=(
            EmbeddedBrokerTableManager if settings.embedded_broker else SeekThenResumeTableManager
        ),
        datadir=str(settings.data_dir / "faust"),
        # the worker's own small web server: /health (off unless LINEAGE_WORKER_PORT is set)
        web_enabled=settings.worker_port is not None,
        web_bind=settings.worker_host,
        web_port=settings.worker_port or 6066,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        # quick group joins (the default took ~30 s on the embedded broker). Tansu holds a
        # JoinGroup for half the session timeout (measured: 10 s -> 5 s, 6 s -> 3 s, 2 s ->
        # 1 s), so the embedded stack uses 2 s; Apache Kafka's group.min.session.timeout.ms is
        # 6 s, and its join delay is the broker's group.initial.rebalance.delay.ms
        broker_session_timeout=EMBEDDED_SESSION_TIMEOUT_S if settings.embedded_broker else 6.0,
        broker_heartbeat_interval=0.4 if settings.embedded_broker else 1.0,
        broker_rebalance_timeout=5.0,
        broker_commit_interval=1.0,
        producer_acks=-1,
        # Batches of up to 512 KB per partition (default 16 KB): a run-state group writes
        # thousands of changelog records, and aiokafka makes a send wait whenever its
        # partition's batch is full (one produce request per broker round trip). Under real
        # Kafka's default 1 MB message.max.bytes, which applies to a whole batch.
        producer_max_batch_size=512 * 1024,
        producer_max_request_size=settings.producer_max_request_bytes,
        consumer_max_fetch_size=max(2 * settings.max_event_bytes, 4 * 1_048_576),
        stream_buffer_maxsize=4 * settings.batch_size,
        # At most this many messages a fetch: Faust pauses a partition when its stream's queue is
        # 80 % full, and what one fetch returned beyond the 20 % left would make its one fetcher
        # wait, for every topic (track_runs' messages too).
        broker_max_poll_records=settings.batch_size // 4,
        # Stopping (or rebalancing) must not wait for every delivered event to be acknowledged:
        # the agents acknowledge a batch only after its writes, and a worker told to stop with a
        # backlog waited for acknowledgements that never came (still running 60 s after SIGTERM).
        # What is not acknowledged is delivered again, and every write is idempotent.
        stream_wait_empty=False,
        # every topic and table carries bytes we encode ourselves (orjson)
        key_serializer="raw",
        value_serializer="raw",
        Monitor=LeanMonitor,  # Faust's per-message statistics, unread (faust_patches/lean.py)
    )


def topology(settings: Settings) -> Topology:
    app = faust_app(settings)

    def raw_topic(name: str, **options: Any) -> faust.TopicT:
        # a schema each: a topic's options (allow_empty) are written into its schema
        return app.topic(name, schema=RawSchema(), **options)

    return Topology(
        app=app,
        events=raw_topic(settings.topic, allow_empty=True),
        dlq=raw_topic(settings.dlq_topic),
        alerts=raw_topic(settings.alerts_topic),
        live=raw_topic(settings.live_topic),
        updates=raw_topic(
            updates_topic_name(settings),
            partitions=settings.partitions,
            internal=True,
            # each message carries a batch's updates of one partition (tens of KB); the
            # app-wide stream buffer is sized for events and allows thousands of messages
            maxsize=UPDATES_BUFFER,
        ),
        runs=app.Table(
            RUNS_TABLE,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            options=ROCKSDB_OPTIONS,
        ),
    )
