"""Prometheus metrics of the worker, served on its web port (``/metrics``) next to ``/health``.

Counters move as the agents work; the gauges (consumer lag, live runs by state, the live
table's native memory) are set when the page is scraped, from the consumer's positions, the
live-run counts the agents keep and the table's rocksdb databases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)
# time to detect spans seconds (a page) to hours (a stale dataset); to resolve, minutes to days
INCIDENT_BUCKETS = (1, 5, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400)
PAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.consumed = Counter(
            "lineage_worker_events_consumed", "Messages read from the events topic", registry=r
        )
        self.stored = Counter(
            "lineage_worker_events_stored",
            "Events newly written to the store, by kind (run / non_run)",
            ("kind",),
            registry=r,
        )
        self.deduplicated = Counter(
            "lineage_worker_events_deduplicated",
            "Events that were stored already (redeliveries, repeats): consumed = stored + "
            "deduplicated + dead_lettered",
            registry=r,
        )
        self.dead_lettered = Counter(
            "lineage_worker_events_dead_lettered",
            "Messages sent to the dead-letter topic, by reason",
            ("reason",),
            registry=r,
        )
        self.store_write = Histogram(
            "lineage_worker_store_write_seconds",
            "Time of one attempt to write a batch to the store (events, or run statuses)",
            ("operation",),
            buckets=WRITE_BUCKETS,
            registry=r,
        )
        self.run_state_changes = Counter(
            "lineage_worker_run_state_changes",
            "Runs entering a state (RUNNING, COMPLETE, FAIL, ABORT, UNKNOWN)",
            ("state",),
            registry=r,
        )
        self.live_runs = Gauge(
            "lineage_worker_live_runs",
            "Runs in this worker's live table by state (partitions counted once swept after "
            "assignment)",
            ("state",),
            registry=r,
        )
        self.alerts = Counter(
            "lineage_worker_alerts",
            "Alerts raised (each condition of each run once), by kind and whether paged",
            ("kind", "paged"),
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "lineage_worker_webhook_deliveries",
            "Pages by webhook (its position in LINEAGE_WEBHOOKS) and outcome: delivered, "
            "retried (a try that failed), refused (for good), expired (older than "
            "LINEAGE_PAGE_MAX_AGE, not sent)",
            ("webhook", "outcome"),
            registry=r,
        )
        self.webhook_queued = Gauge(
            "lineage_worker_webhook_queued",
            "Pages waiting for a webhook: queued, waiting for a retry or in flight",
            ("webhook",),
            registry=r,
        )
        self.webhook_oldest = Gauge(
            "lineage_worker_webhook_oldest_waiting_seconds",
            "How long the oldest page waiting for a webhook has waited",
            ("webhook",),
            registry=r,
        )
        self.page_path = Histogram(
            "lineage_worker_page_path_seconds",
            "Where the time to detect goes, by stage: ingest (an ingest batch's oldest event, "
            "from its Kafka timestamp, to the batch's run updates forwarded), hop (a run-updates "
            "message from its timestamp to track_runs folding it), fold (the fold's start to a "
            "page handed to the webhooks' queues)",
            ("stage",),
            buckets=PAGE_BUCKETS,
            registry=r,
        )
        self.webhook_latency = Histogram(
            "lineage_worker_webhook_delivery_seconds",
            "A page's time from its webhook's queue to the receiver's 2xx, by webhook",
            ("webhook",),
            buckets=PAGE_BUCKETS,
            registry=r,
        )
        self.incident_times = Histogram(
            "lineage_worker_incident_seconds",
            "Per incident, from the failure (its run's end) to the page (stage detect) and to "
            "its resolution by itself (stage resolve); by hand: the API's metric",
            ("stage",),
            buckets=INCIDENT_BUCKETS,
            registry=r,
        )
        self.incident_changes = Counter(
            "lineage_worker_incident_changes",
            "Incidents opened, joined, reopened and resolved by the worker",
            ("change",),
            registry=r,
        )
        self.foreign_alerts = Counter(
            "lineage_worker_foreign_alerts",
            "Alerts on the alerts topic raised by another deployment (another LINEAGE_APP_ID), "
            "never sent",
            registry=r,
        )
        self.offset_gaps = Counter(
            "lineage_worker_offset_gaps",
            "Offsets a stream skipped (expected only after transactional producers' markers)",
            ("topic",),
            registry=r,
        )
        self.triage_fallbacks = Counter(
            "lineage_worker_triage_fallbacks",
            "Batches triaged in the event loop because the triage helper could not (helper_died, "
            "handback_failed: its result file could not be written or read)",
            ("reason",),
            registry=r,
        )
        self.ingest_held_back = Counter(
            "lineage_worker_ingest_held_back_seconds",
            "Time the events topic was not fetched because track_runs trailed ingest by more "
            "than LINEAGE_MAX_UPDATES_LAG run-updates messages (backpressure.py): a backlog "
            "then stays in the events topic",
            registry=r,
        )
        self.native_memory = Gauge(
            "lineage_worker_live_table_native_bytes",
            "Native memory of the live table's rocksdb databases, by kind (memtables, "
            "block_cache, table_readers): part of the worker's RSS that Python does not see",
            ("kind",),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "lineage_worker_consumer_lag",
            "Messages not yet read, per assigned partition (high watermark - position)",
            ("topic", "partition"),
            registry=r,
        )

    def render(
        self,
        lag: Iterable[tuple[str, int, int]],
        live: Mapping[str, int],
        native: Mapping[str, int],
    ) -> bytes:
        """The exposition text, gauges set from ``lag`` (topic, partition, lag), ``live`` and
        ``native`` (bytes by kind)."""
        self.consumer_lag.clear()
        for topic, partition, behind in lag:
            self.consumer_lag.labels(topic, str(partition)).set(behind)
        self.live_runs.clear()
        for state, count in live.items():
            self.live_runs.labels(state).set(count)
        for kind, size in native.items():
            self.native_memory.labels(kind).set(size)
        return generate_latest(self.registry)
