"""The worker's web pages (``LINEAGE_WORKER_PORT``): ``/health`` and Prometheus ``/metrics``."""

from __future__ import annotations

import time

import faust

from lineage_faust.faust_patches.consumer import read_offset, rocksdb_databases
from lineage_faust.worker.native_memory import native_bytes
from lineage_faust.worker.state import WorkerState
from lineage_faust.worker.topology import Topology


def consumer_lag(app: faust.App) -> list[tuple[str, int, int]]:
    """(topic, partition, messages not yet read) of this worker's assigned partitions."""
    consumer = app.consumer
    lag = []
    for tp in sorted(consumer.assignment()):
        try:  # positions known once fetching started
            high = consumer.highwater(tp)
            read = read_offset(app, tp)
        except Exception:
            continue
        if high is not None:
            position = read + 1 if read is not None else 0
            lag.append((tp.topic, tp.partition, max(0, high - position)))
    return lag


def stalled(state: WorkerState, app: faust.App) -> str | None:
    """Why ingest is stalled: events wait on this worker's partitions and no batch was done
    for LINEAGE_STALL_AFTER seconds."""
    idle_s = time.monotonic() - state.stats.last_batch_at
    if idle_s < state.settings.stall_after_s or app.rebalancing:
        return None
    topic = state.settings.topic
    waiting = sum(lag for name, _, lag in consumer_lag(app) if name == topic)
    if not waiting:
        return None
    return f"{waiting} events wait and none was consumed for {idle_s:.0f} s"


def install(state: WorkerState, topics: Topology) -> None:
    app = topics.app

    @app.page("/health")
    async def health_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """200 while the worker can do its work; 503 while it waits out an outage or stalls."""
        report = state.health.report(stalled(state, app))
        stats = state.stats
        body = {**report, "pipeline": stats.summary(), "accounting": stats.accounting()}
        return view.json(body, status=503 if report["status"] == "unhealthy" else 200)

    @app.page("/metrics")
    async def metrics_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Prometheus metrics of this worker (see lineage_faust/worker/metrics.py)."""
        native = native_bytes(rocksdb_databases(topics.runs))
        text = state.stats.metrics.render(consumer_lag(app), state.index.live_total(), native)
        # plain text/plain: aiohttp refuses parameters here, Prometheus reads it as 0.0.4
        return view.bytes(text, content_type="text/plain")
