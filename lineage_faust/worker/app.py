"""The worker's Faust app, wired: topology, shared state, agents, timers, pages.

``ingest`` consumes events in batches, triaged in a helper process (``triage_pool``), stores
them (in the helper when the store allows it: ``store_writes``), dead-letters what is invalid
and forwards each batch's run updates by owning partition. ``track_runs`` folds them into the
live run table and the store, raises alerts and publishes changes (``run_states``). While
track_runs trails ingest by more than ``LINEAGE_MAX_UPDATES_LAG`` messages, the events topic
is not fetched (``backpressure``). Pages go to each webhook's own queue as they are raised
(``deliveries``); ``notify`` reads them back from the alerts topic and acknowledges each once
delivered, so a crash loses none.
"""

from __future__ import annotations

import faust

from lineage_faust.faust_patches.table_writes import TableWriter
from lineage_faust.settings import Settings
from lineage_faust.store import Store
from lineage_faust.worker import timers, web
from lineage_faust.worker.backpressure import EventsValve
from lineage_faust.worker.deliveries import Deliveries
from lineage_faust.worker.ingest import Ingest
from lineage_faust.worker.notify import Notify
from lineage_faust.worker.run_states import RunStates
from lineage_faust.worker.sends import SendEachOnce
from lineage_faust.worker.state import WorkerState
from lineage_faust.worker.topology import topology
from lineage_faust.worker.track_runs import FaustLiveTable, TrackRuns
from lineage_faust.worker.triage_pool import TriagePool

SETTLE_PAGES_S = 5.0  # a stopping worker waits this long at most for pages in flight


def make_app(
    settings: Settings,
    store: Store,
    *,
    triage_pool: TriagePool | None = None,
) -> faust.App:
    """The app; batches are triaged by ``triage_pool`` (default: in the event loop)."""
    if triage_pool is None:
        triage_pool = TriagePool(
            0,
            max_bytes=settings.max_event_bytes,
            partitions=settings.partitions,
            pack_text=store.pack_text,
        )
    topics = topology(settings)
    app = topics.app
    state = WorkerState(settings, store)
    metrics = state.stats.metrics
    triage_pool.on_fallback = lambda reason: metrics.triage_fallbacks.labels(reason).inc()
    valve = EventsValve(
        app,
        topics.events.get_topic_name(),
        state.updates_lag,
        settings.max_updates_lag,
        on_held=metrics.ingest_held_back.inc,
    )

    async def publish(alerts: list[dict], live: list[dict]) -> None:
        await state.send_each_once("publish alerts", SendEachOnce(topics.alerts, alerts))
        await state.send_each_once("publish run changes", SendEachOnce(topics.live, live))

    def assigned() -> set[int]:
        name = topics.updates.get_topic_name()
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}

    table = FaustLiveTable(topics.runs, TableWriter(app, topics.runs))
    deliveries = None
    if settings.webhooks:
        deliveries = Deliveries(
            settings.webhooks, settings.webhook_format, settings.delivery, metrics
        )
        notify = Notify(deliveries, settings.app_id, metrics)
        app.agent(topics.alerts, name="notify")(notify.run)

        # while the consumer still reads: a page delivered as the worker stops is read back
        # and acknowledged, not sent again by the next worker
        app.before_stop.append(lambda: notify.settle(SETTLE_PAGES_S))

    runs = RunStates(state, table, publish, page=deliveries.page_now if deliveries else None)
    app.agent(topics.events, name="ingest")(Ingest(state, topics, triage_pool, valve).run)
    app.agent(topics.updates, name="track_runs")(TrackRuns(state, runs, table, valve, assigned).run)
    timers.install(state, topics, valve)
    web.install(state, topics)
    return app
