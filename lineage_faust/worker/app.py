"""The Faust app: topics, the live run table and the two agents, wired to a store.

Data flow (see README for the diagram)::

    openlineage.events --ingest--> store.events_by_run / non_run_events
                          |   `--> openlineage.events.dlq (+ store.dead_letters)
                          `--> <app>-run-updates (one message per owning partition per batch)
                                  --track_runs--> runs table (changelog) + store.run_status

``ingest`` consumes in batches, has each triaged (``triage_pool``: in a helper process for
all but small batches, which also stores the batch there when the store allows it: sink.py)
and acknowledges a batch's events only after its store writes and sends have completed:
at-least-once, with idempotent writes. While track_runs trails ingest by more than
``LINEAGE_MAX_UPDATES_LAG`` messages, the events topic is not fetched (``backpressure``).
``track_runs`` folds the run-updates messages waiting in its channel together, up to
``TRACK_GROUP_UPDATES`` updates (each message carries a batch's updates for the runs of one
partition). A Faust table read goes to the partition of the stream's current event, so each
message's runs are read with that message made current (``owning``); a group's writes go to
the table per partition, in batches (``table_writes``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import faust
import orjson
from faust.types import RecordMetadata

from lineage_faust.domain import alerting
from lineage_faust.domain.alerting import Alert
from lineage_faust.domain.dead_letters import shrink
from lineage_faust.domain.identity import run_partition
from lineage_faust.domain.live import live_change, live_messages
from lineage_faust.domain.records import RunStatus, state_from_status, status_from_state
from lineage_faust.domain.runstate import (
    MAX_SEEN,
    RUNNING,
    RunState,
    RunUpdate,
    apply_update,
    is_expired,
)
from lineage_faust.domain.triage import Batch, RawMessage, Rejected, decode_updates
from lineage_faust.failures import describe, is_permanent
from lineage_faust.faust_patches.lean import LeanMonitor, RawSchema
from lineage_faust.faust_patches.recovery import (
    EmbeddedBrokerTableManager,
    SeekThenResumeTableManager,
)
from lineage_faust.faust_patches.table_writes import TableWriter
from lineage_faust.faust_patches.transport import broker_url
from lineage_faust.kafka.topics import RUNS_TABLE, updates_topic_name
from lineage_faust.retry import retry_forever
from lineage_faust.settings import Settings
from lineage_faust.store import Store, StoreRefused
from lineage_faust.store.queries import RunQuery
from lineage_faust.worker.accounting import Health, Stats
from lineage_faust.worker.backpressure import EventsValve
from lineage_faust.worker.group_coverage import request_rejoin, uncovered_topics
from lineage_faust.worker.heap import release_free_heap
from lineage_faust.worker.native_memory import native_bytes, rocksdb_databases
from lineage_faust.worker.sends import SendEachOnce
from lineage_faust.worker.startup_logs import quiet_until_joined
from lineage_faust.worker.store_writes import Written, write_batch, write_refusing
from lineage_faust.worker.triage_pool import TriagePool
from lineage_faust.worker.webhooks import WebhookSender

log = logging.getLogger(__name__)
T = TypeVar("T")
SWEEP = b'{"sweep":true}'
INGEST_PIPELINE_DEPTH = 2  # batches whose writes may be in flight at once
# Run updates folded together, at most (about: whole messages). Groups of up to 64 messages
# (16k updates of small events) took the worker to ~530 MB in the memory benchmark once ingest
# ran ahead; 4,000 held it to 371 MB at 300k runs, at the same speed (README, Performance).
TRACK_GROUP_UPDATES = 4000
HEAP_TRIM_INTERVAL_S = 5.0  # free C heap handed back to the OS (heap.py)
GROUP_CHECK_INTERVAL_S = 5.0  # every subscribed topic assigned in the group? (group_coverage)
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


@dataclass(slots=True)
class _Expiry:
    """Finished runs waiting to leave the live table, per internal partition, oldest first."""

    queues: dict[int, collections.deque[tuple[float, str]]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    indexed: set[int] = field(default_factory=set)
    # runs in the live table by state, for indexed partitions only (the /metrics gauge)
    live: dict[int, collections.Counter[str]] = field(default_factory=dict)
    # unfinished runs in the live table, for indexed partitions (stuck/overdue checks)
    running: dict[int, set[str]] = field(default_factory=dict)

    def live_total(self) -> collections.Counter[str]:
        return sum(self.live.values(), collections.Counter())


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
    app = faust.App(
        settings.app_id,
        broker=broker_url(settings),
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
        # quick group joins (the default took ~30 s on the embedded broker)
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
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
        Monitor=LeanMonitor,  # Faust's per-message statistics, unread (lean_faust.py)
    )

    def raw_topic(name: str, **options: Any) -> faust.TopicT:
        # a schema each: a topic's options (allow_empty) are written into its schema
        return app.topic(name, schema=RawSchema(), **options)

    events_topic = raw_topic(settings.topic, allow_empty=True)
    dlq_topic = raw_topic(settings.dlq_topic)
    alerts_topic = raw_topic(settings.alerts_topic)
    live_topic = raw_topic(settings.live_topic)
    rules = settings.alert_rules
    updates_topic = raw_topic(
        updates_topic_name(settings),
        partitions=settings.partitions,
        internal=True,
        # each message carries a batch's updates of one partition (tens of KB); the app-wide
        # stream buffer is sized for events and allows thousands of messages
        maxsize=UPDATES_BUFFER,
    )
    runs = app.Table(
        RUNS_TABLE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options=ROCKSDB_OPTIONS,
    )
    table_writer = TableWriter(app, runs)
    stats = Stats()
    health = Health()
    triage_pool.on_fallback = lambda reason: stats.metrics.triage_fallbacks.labels(reason).inc()
    expiry = _Expiry()

    def retrying(what: str, attempt: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return retry_forever(what, attempt, health=health)

    async def send_each_once(what: str, sender: SendEachOnce) -> list[RecordMetadata]:
        """Send (retrying while the broker is away); a topic that refuses every message for
        good (invalid, not authorised) is reported and passed by: the pipeline moves on."""
        try:
            return await retrying(what, sender.send)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            health.refused(what, exc)
            log.error("%s: refused for good (%s); moving on", what, describe(exc))
            return []

    write_seconds = stats.metrics.store_write

    async def store_batch(batch: Batch, messages: list[RawMessage]) -> Written:
        # stored already by the triage helper (sink.py), or here
        written = batch.written or await write_batch(store, batch, messages)
        write_seconds.labels("events").observe(written.seconds)
        return written

    async def store_in_turn(
        batch: Batch, messages: list[RawMessage], after: asyncio.Future | None
    ) -> Written:
        """A batch's store writes, after the previous batch's. Which events of a batch are
        new is read from the store (Cassandra reads before it writes): two batches in flight
        with the same event would both count it as new if their writes overlapped."""
        if after is not None and batch.written is None:
            await asyncio.shield(after)
        return await retrying("store batch", partial(store_batch, batch, messages))

    def dead_letter_sender(rejected: list[Rejected]) -> SendEachOnce:
        budget = min(settings.dlq_max_message_bytes, settings.producer_max_request_bytes)
        letters = [r.dlq_message(budget) for r in rejected]
        return SendEachOnce(dlq_topic, letters, on_refused=shrink)

    def log_dead_letters(rejected: list[Rejected]) -> None:
        for r in rejected:
            m = r.message
            # the reason and field, never the detail: it may quote the message's content
            # (which stays on the dead-letter topic and in the store, for whoever may see it)
            log.warning(
                "dead-lettered %s[%d]@%d: %s%s",
                m.topic,
                m.partition,
                m.offset,
                r.rejection.reason,
                f" (field {r.rejection.field})" if r.rejection.field else "",
            )

    async def forward_updates(batch: Batch) -> None:
        messages = [
            {"key": None, "value": value, "partition": partition}
            for partition, values in batch.update_messages.items()
            for value in values
        ]
        sent = await send_each_once("forward run updates", SendEachOnce(updates_topic, messages))
        for record in sent:
            updates_sent[record.partition] = max(
                updates_sent.get(record.partition, 0), record.offset + 1
            )

    updates_sent: dict[int, int] = {}  # run-updates partition -> offset after ingest's last
    updates_done: dict[int, int] = {}  # this worker's partitions -> after track_runs' last

    def updates_lag() -> int:
        """Run-updates messages ingest sent to this worker's partitions that track_runs has not
        finished yet (a partition counts once track_runs finished a message of it). Counted to
        the end of track_runs' work, not to its receipt: messages fetched and queued for it
        (hundreds, under a backlog) are the backlog too."""
        return sum(
            max(0, updates_sent.get(partition, 0) - done)
            for partition, done in updates_done.items()
        )

    valve = EventsValve(
        app,
        events_topic.get_topic_name(),
        updates_lag,
        settings.max_updates_lag,
        on_held=stats.metrics.ingest_held_back.inc,
    )

    async def ingest_batch(
        events: list[faust.EventT], after: asyncio.Future | None, stored: asyncio.Future
    ) -> None:
        """``after``: resolved once the previous batch is stored; ``stored``: this one's."""
        try:
            await ingest_in_turn(events, after, stored)
        finally:
            if not stored.done():
                stored.set_result(None)

    async def ingest_in_turn(
        events: list[faust.EventT], after: asyncio.Future | None, stored: asyncio.Future
    ) -> None:
        messages = [
            RawMessage(
                m.value, m.key, m.topic, m.partition, m.offset, tuple(m.headers or ()), m.timestamp
            )
            for m in (e.message for e in events)
        ]
        batch = await triage_pool.triage(messages)
        rejected = list(batch.rejected)
        # Store writes and broker sends are independent: run them concurrently.
        written, _, _ = await asyncio.gather(
            store_in_turn(batch, messages, after),
            send_each_once("send dead letters", dead_letter_sender(rejected)),
            forward_updates(batch),
        )
        stored.set_result(None)
        refused = batch.rejected[len(rejected) :]  # events the store refused for good
        if refused:
            await send_each_once("send dead letters", dead_letter_sender(refused))
        for r in batch.rejected:
            if r.rejection.reason == "store_refused":
                health.refused("store events", r.rejection.detail)
        log_dead_letters(batch.rejected)
        stats.record_batch(batch, written)
        await valve.adjust()  # track_runs may now trail by too much: stop fetching events

    @app.agent(events_topic, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        # Our own batching with explicit acknowledgements: a batch is flushed when it is full
        # or when nothing more is waiting (small batches when idle, big ones under backlog),
        # and its events are acknowledged only after every write and send of the batch has
        # completed, so the offsets Faust commits never pass an unstored event. (Faust's
        # take_events lost a wake-up after a crash-restart and stalled the stream for good.)
        # Pipelined: while one batch's store writes and sends are in flight (SQLite works in
        # its own thread, the broker over the network), the next batch is parsed. Batches are
        # acknowledged strictly in order, each only once its own work is done, and stored in
        # order (store_in_turn).
        manual = stream.noack()
        pending: list[faust.EventT] = []
        last_stored: asyncio.Future | None = None
        in_flight: collections.deque[tuple[asyncio.Task, list[faust.EventT]]] = collections.deque()

        async def finish_oldest() -> None:
            task, events = in_flight.popleft()
            await task
            for done in events:
                await manual.ack(done)

        try:
            async for event in manual.events():
                note_offset(event)
                pending.append(event)
                if len(pending) < settings.batch_size and not manual.channel.empty():
                    if not (in_flight and in_flight[0][0].done()):
                        continue
                    await finish_oldest()  # acknowledge promptly what is already done
                    continue
                stored = asyncio.get_running_loop().create_future()
                task = asyncio.ensure_future(ingest_batch(pending, last_stored, stored))
                in_flight.append((task, pending))
                last_stored = stored
                pending = []
                while len(in_flight) > INGEST_PIPELINE_DEPTH or (
                    in_flight and manual.channel.empty() and not pending
                ):
                    await finish_oldest()
        finally:
            for task, _ in in_flight:  # stopping or rebalancing: unacknowledged, redelivered
                task.cancel()

    def owning(stream: faust.StreamT, event: faust.EventT) -> None:
        """Make ``event`` the stream's current event: Faust's rocksdb table store reads in the
        partition of the current event, and one group of track_runs messages spans partitions
        (each run belongs to one of them)."""
        stream._set_current_event(event)

    async def load_states(
        stream: faust.StreamT, parts: list[tuple[faust.EventT, list[RunUpdate]]]
    ) -> tuple[dict[str, RunState | None], dict[str, RunStatus], dict[str, str]]:
        """Each run's state: the live table entry, unless the store knows more.

        The store is the durable record and the table a cache of it. A run that left the
        table (retention), or whose table entry lags the store (changelog recovery that
        stopped short, a crash between the two writes), is rebuilt from the store.
        """
        run_ids = list(dict.fromkeys(u.run_id for _, updates in parts for u in updates))
        stored = await retrying("read run statuses", partial(store.get_run_statuses, run_ids))
        states: dict[str, RunState | None] = {}
        in_table: dict[str, str] = {}  # run -> its state in the live table
        for event, updates in parts:
            owning(stream, event)
            for run_id in dict.fromkeys(u.run_id for u in updates):
                if run_id in states:
                    continue
                raw_state = runs.get(run_id.encode())
                live = RunState.from_dict(orjson.loads(raw_state)) if raw_state else None
                if live is not None:
                    in_table[run_id] = live.state
                states[run_id] = live
        for run_id, status in stored.items():
            live = states[run_id]
            if live is None or status.event_count > live.event_count:
                seen = await retrying(
                    "read event ids", partial(store.recent_event_ids, run_id, MAX_SEEN)
                )
                count = await retrying("count events", partial(store.count_events, run_id))
                states[run_id] = state_from_status(status, seen, count)
                stats.runs_revived += 1
        return states, stored, in_table

    async def store_rows(
        what: str, write: Callable[[Sequence[Any]], Awaitable[T]], rows: Sequence[Any]
    ) -> list[T]:
        """Write ``rows``, waiting while the store is away; rows it refuses for good are
        logged and left out (each result of the writes that went through is returned)."""
        results, refused = await retrying(what, partial(write_refusing, write, rows, what))
        if refused:
            health.refused(what, StoreRefused(next(iter(refused.values()))))
            log.error("%s: the store refused %d rows for good; left out", what, len(refused))
        return results

    async def record_alerts(alerts: list[Alert]) -> list[Alert]:
        """The alerts recorded in the store's outbox that still have to be published."""
        results = await store_rows("record alerts", store.record_alerts, alerts)
        return [alert for pending in results for alert in pending]

    # (namespace, job) -> (cached until, typical duration in ms or None: too few samples)
    typical: dict[tuple[str, str], tuple[float, int | None]] = {}

    async def apply_updates(
        stream: faust.StreamT, parts: list[tuple[faust.EventT, list[RunUpdate]]]
    ) -> None:
        """Fold a group of run-updates messages (any partitions) into the runs' states: the
        store read once, statuses and alerts written once, the broker awaited once."""
        now = time.time()
        states, stored, in_table = await load_states(stream, parts)
        updates = [u for _, items in parts for u in items]
        before = {run_id: s.state if s else None for run_id, s in states.items()}
        changed: dict[str, RunState] = {}
        duplicates = 0
        for update in updates:
            new, was_changed = apply_update(states[update.run_id], update, now)
            states[update.run_id] = new
            if was_changed:
                changed[update.run_id] = new
            else:
                duplicates += 1
        stats.redelivered_updates += duplicates
        # The store first (statuses, and alerts into its outbox), then the table: after a
        # crash in between, the redelivered message finds the table behind the store and the
        # run is rebuilt from the store (load_states). Every touched run is written, changed or
        # not. An unchanged run that could have raised an alert (a redelivery) is offered to
        # the outbox again: it returns what it still has to publish, so nothing is lost.
        candidates = [
            alert
            for state in states.values()
            if state is not None and (state.run_id in changed or may_alert(state))
            for alert in alerting.on_change(state, rules, now, again=True)
        ]
        updated_at = datetime.now(UTC)
        statuses = [status_from_state(s, updated_at) for s in states.values() if s is not None]

        async def write_statuses(rows: Sequence[RunStatus]) -> None:
            with write_seconds.labels("run_statuses").time():
                await store.write_run_statuses(rows, stored)

        # queued together: one wait behind the ingest writes, not two; statuses first, so an
        # alert anyone can see never names a run whose status is not stored yet
        _, pending = await asyncio.gather(
            store_rows("store run statuses", write_statuses, statuses),
            record_alerts(candidates),
        )
        remember_alerts(states, changed, candidates)
        stats.runs_updated += len(changed)
        moved = [s for run_id, s in changed.items() if s.state != before[run_id]]
        # per group, not per run: a labelled child's lookup is slow (~3 % of the loop per run)
        for state_name, n in collections.Counter(s.state for s in moved).items():
            stats.metrics.run_state_changes.labels(state_name).inc(n)
        writes: dict[int, list[tuple[bytes, bytes | None]]] = collections.defaultdict(list)
        for event, items in parts:
            partition = event.message.partition  # each run's table entry lives in it
            for run_id in dict.fromkeys(u.run_id for u in items):
                state = changed.pop(run_id, None)
                if state is not None:
                    writes[partition].append((run_id.encode(), orjson.dumps(state)))
                    note_change(partition, state, before[run_id], in_table)
        await table_writer.write(writes)
        await publish(moved, before, pending)

    def note_change(
        partition: int, state: RunState, before: str | None, in_table: Mapping[str, str]
    ) -> None:
        """Keep the partition's bookkeeping for a run written to the live table: expiry
        queue, live counts, running set."""
        run_id = state.run_id
        if state.finished_at is not None:
            expiry.queues[partition].append((state.finished_at, run_id))
        if state.state != before and state.state == "COMPLETE":
            typical.pop((state.namespace, state.job), None)  # the job's typical duration moves
        live = expiry.live.get(partition)
        if live is not None:
            if run_id in in_table:
                live[in_table[run_id]] -= 1
            live[state.state] += 1
        running = expiry.running.get(partition)
        if running is not None:
            (running.discard if state.is_terminal else running.add)(run_id)

    def may_alert(state: RunState) -> bool:
        return state.state in ("FAIL", "ABORT") or (
            state.state == "COMPLETE"
            and (alerting.Kind.STUCK in state.alerted or alerting.Kind.OVERDUE in state.alerted)
        )

    def remember_alerts(
        states: Mapping[str, RunState | None], changed: dict[str, RunState], alerts: list[Alert]
    ) -> None:
        """Note each raised kind in its run's state (the changelog-backed table: the same
        condition is not looked at again); a run so noted is written to the table."""
        for alert in alerts:
            state = states[alert.run_id]
            assert state is not None
            if alert.kind not in state.alerted:
                state.alerted = [*state.alerted, alert.kind]
                changed[state.run_id] = state

    async def publish(
        moved: list[RunState], before: Mapping[str, str | None], pending: list[Alert]
    ) -> None:
        """Alerts the outbox still has to publish (then marked published), and the run state
        changes, to the alerts topic and the live topic the API streams from."""
        if not moved and not pending:
            return
        public = settings.public_url
        alerts = [a.to_dict(public) for a in pending]
        changes = [live_change(s, before.get(s.run_id)) for s in moved]
        messages = [
            {"key": a.run_id.encode(), "value": orjson.dumps(alert)}
            for a, alert in zip(pending, alerts, strict=True)
        ]
        live = [{"key": None, "value": value} for value in live_messages(changes, alerts)]
        await send_each_once("publish alerts", SendEachOnce(alerts_topic, messages))
        await send_each_once("publish run changes", SendEachOnce(live_topic, live))
        if pending:
            ids = [a.alert_id for a in pending]
            await store_rows("mark alerts published", store.mark_alerts_published, ids)
            for a in pending:
                stats.metrics.alerts.labels(a.kind, str(a.paged).lower()).inc()
                log.log(
                    logging.WARNING if a.paged else logging.INFO,
                    "alert %s (%s): run %s of %s/%s: %s",
                    a.kind,
                    a.severity,
                    a.run_id,
                    a.namespace,
                    a.job,
                    a.detail,
                )

    async def typical_duration(state: RunState, now: float) -> int | None:
        """The job's median duration over its recent completed runs (the store's job history,
        cached for a minute, or until one of its runs completes)."""
        key = (state.namespace, state.job)
        cached = typical.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        limits = rules.limits(*key)
        query = RunQuery(state="COMPLETE", namespace=key[0], job=key[1])
        page = await retrying("read job history", partial(store.list_runs, query, 20))
        durations = [r.duration_ms for r in page.runs if r.duration_ms is not None]
        value = alerting.typical_duration_ms(durations, limits.min_samples)
        if len(typical) > 10_000:
            typical.clear()
        typical[key] = (now + 60.0, value)
        return value

    async def check_running(partition: int, now: float) -> None:
        """Stuck and overdue runs of this partition (inside stream iteration: table writes
        land in the partition's changelog)."""
        alerts: list[Alert] = []
        states: dict[str, RunState | None] = {}
        for run_id in list(expiry.running.get(partition, ())):
            raw_state = runs.get(run_id.encode())
            if raw_state is None:
                expiry.running[partition].discard(run_id)
                continue
            state = RunState.from_dict(orjson.loads(raw_state))
            if state.is_terminal:
                expiry.running[partition].discard(run_id)
                continue
            typical_ms = None
            if state.state == RUNNING:
                typical_ms = await typical_duration(state, now)
            # again: a condition already noted is offered to the outbox too, which returns
            # it only if a crash kept it from being published
            found = alerting.on_sweep(state, rules, now, typical_ms, again=True)
            if found:
                states[run_id] = state
                alerts.extend(found)
        if not alerts:
            return
        pending = await record_alerts(alerts)
        noted: dict[str, RunState] = {}
        remember_alerts(states, noted, alerts)
        writes = [(run_id.encode(), orjson.dumps(state)) for run_id, state in noted.items()]
        await table_writer.write({partition: writes})
        await publish([], {}, pending)

    def index_partitions(partitions: set[int]) -> None:
        """Expiry queue, live counts and running set of partitions swept for the first time
        since start or assignment: one pass over the live table for all of them (the table
        iterates every assigned partition; a pass per partition cost 0.7 s of blocked event
        loop for 8 partitions at 1,000 events/s, and grows with the runs in flight)."""
        found: dict[int, list[tuple[float, str]]] = {p: [] for p in partitions}
        running_now: dict[int, set[str]] = {p: set() for p in partitions}
        counts: dict[int, collections.Counter[str]] = {p: collections.Counter() for p in partitions}
        for key, value in runs.items():
            run_id = key.decode()
            partition = run_partition(run_id, settings.partitions)
            if partition in partitions:
                data = orjson.loads(value)
                counts[partition][data["state"]] += 1
                if data.get("finished_at") is not None:
                    found[partition].append((data["finished_at"], run_id))
                else:
                    running_now[partition].add(run_id)
        for partition in partitions:
            expiry.queues[partition].extend(sorted(found[partition]))
            expiry.indexed.add(partition)
            expiry.live[partition] = counts[partition]
            expiry.running[partition] = running_now[partition]

    async def sweep(partition: int) -> None:
        """Drop finished runs older than the retention window from the live table, and look
        for stuck and overdue runs."""
        now = time.time()
        if partition not in expiry.indexed:
            # every assigned partition at once: the pass over the table reads them all anyway
            assigned = {
                tp.partition
                for tp in app.assignor.assigned_actives()
                if tp.topic == updates_topic.get_topic_name()
            }
            index_partitions((assigned | {partition}) - expiry.indexed)
        queue = expiry.queues[partition]
        removed: dict[bytes, None] = {}  # a run finished twice is queued twice
        while queue and now - queue[0][0] >= settings.run_retention_s:
            _, run_id = queue.popleft()
            key = run_id.encode()
            raw_state = None if key in removed else runs.get(key)
            if raw_state is None:
                continue
            state = RunState.from_dict(orjson.loads(raw_state))
            if is_expired(state, now, settings.run_retention_s):
                removed[key] = None
                if partition in expiry.live:
                    expiry.live[partition][state.state] -= 1
        stats.runs_evicted += len(removed)
        await table_writer.write({partition: list(removed.items())})
        if removed:
            log.info(
                "evicted %d finished runs from the live table (partition %d)",
                len(removed),
                partition,
            )
        await check_running(partition, now)

    @app.agent(updates_topic, name="track_runs")
    async def track_runs(stream: faust.StreamT) -> None:
        # Batched like ingest: the messages waiting in the channel (any partitions) are folded
        # together, so the store is read and written and the broker awaited once per group,
        # not once per message. A group closes at TRACK_GROUP_UPDATES run updates: that
        # bounds what one group holds (states, status rows, changelog records) while ingest
        # runs ahead. Acknowledged after the group's work.
        manual = stream.noack()
        group: list[faust.EventT] = []
        parts: list[tuple[faust.EventT, list[RunUpdate]]] = []
        sweeps: list[faust.EventT] = []
        held = 0  # run updates in the group
        async for event in manual.events():
            note_offset(event)
            group.append(event)
            if event.value == SWEEP:
                sweeps.append(event)
            else:
                try:
                    updates = decode_updates(event.value)
                except Exception:  # written by us; a bad one is a bug, never a reason to stall
                    log.exception(
                        "undecodable run-updates message at offset %d", event.message.offset
                    )
                else:
                    parts.append((event, updates))
                    held += len(updates)
            if held < TRACK_GROUP_UPDATES and not manual.channel.empty():
                continue
            if parts:
                await apply_updates(manual, parts)
            for sweep_event in sweeps:  # after the updates: a sweep looks at time, not order
                owning(manual, sweep_event)
                await sweep(sweep_event.message.partition)
            for done in group:
                await manual.ack(done)
                updates_done[done.message.partition] = done.message.offset + 1
            group, parts, sweeps, held = [], [], [], 0
            await valve.adjust()  # caught up enough: fetch events again

    if settings.webhooks:
        sender = WebhookSender(settings.webhooks, settings.webhook_format, metrics=stats.metrics)

        @app.agent(alerts_topic, name="notify")
        async def notify_webhooks(stream: faust.StreamT) -> None:
            # Its own agent: a receiver that is down delays webhooks, never the event stream.
            # An alert is acknowledged once every webhook took it (at-least-once).
            async for event in stream.events():
                try:
                    alert = orjson.loads(event.value)
                except orjson.JSONDecodeError:
                    log.error("undecodable alert at offset %d, skipped", event.message.offset)
                    continue
                await sender.deliver(alert)

    # often enough that a newly assigned partition is soon indexed (and counted in /metrics)
    @app.timer(interval=settings.sweep_interval_s)
    async def request_sweeps() -> None:
        # Timers run on every worker; the sweep itself runs in the agent owning each
        # partition, inside stream iteration, so table deletes go to the right changelog.
        if app.rebalancing:
            return
        for partition in range(settings.partitions):
            await updates_topic.send(value=SWEEP, partition=partition)

    @app.timer(interval=1.0)
    async def adjust_backpressure() -> None:
        # ingest and track_runs adjust after each batch and group; this covers a paused topic
        # that neither will call for again (a pause or resume that failed, a rebalance between)
        await valve.adjust()

    startup_noise = quiet_until_joined()

    @app.on_partitions_assigned.connect
    async def joined(app: faust.App, assigned: set, **kwargs: object) -> None:
        startup_noise.joined = True

    @app.on_partitions_revoked.connect
    async def forget_index(app: faust.App, revoked: set, **kwargs: object) -> None:
        valve.forget(revoked)
        for tp in revoked:
            next_offsets.pop(tp, None)
            if tp.topic == updates_topic.get_topic_name():
                updates_done.pop(tp.partition, None)
                expiry.indexed.discard(tp.partition)
                expiry.queues.pop(tp.partition, None)
                expiry.live.pop(tp.partition, None)
                expiry.running.pop(tp.partition, None)

    next_offsets: dict = {}

    def note_offset(event: faust.EventT) -> None:
        """Count offsets a stream skipped. Every message of our topics has an offset of its
        own, so a jump means Faust dropped messages (recovery.py fixes the race found so)."""
        message = event.message
        expected = next_offsets.get(message.tp)
        if expected is not None and message.offset > expected:
            stats.metrics.offset_gaps.labels(message.topic).inc(message.offset - expected)
            log.warning(
                "%s[%d]: offsets %d..%d were never delivered to the agent",
                message.topic,
                message.partition,
                expected,
                message.offset - 1,
            )
        next_offsets[message.tp] = message.offset + 1

    paused_before: set = set()

    @app.timer(interval=5.0)
    async def resume_starved_partitions() -> None:
        # Faust stops fetching a partition while its stream queue is under pressure and
        # resumes it when the queue drains. If that resume were lost, the agent would starve
        # for good (upstream reports: "consumers slowly die"). A partition still paused at two
        # checks in a row is resumed here; if its queue really is still full, Faust pauses it
        # again on the next message.
        nonlocal paused_before
        consumer = app.consumer
        paused = set(getattr(consumer, "_buffered_partitions", ()))
        for tp in paused & paused_before:
            log.info(
                "resuming fetch of %s[%d], paused since the last check", tp.topic, tp.partition
            )
            consumer.on_buffer_drop(tp)
            stats.resumed_partitions += 1
        paused_before = paused - paused_before
        if app.rebalancing:
            return
        # Diagnosis for a stalled stream (README, Guarantees): assigned partitions
        # that Faust neither fetches nor knows to be paused.
        try:  # private Faust state: a diagnostic must never take the worker down
            unfetched = (
                set(consumer.assignment())
                - set(consumer._get_active_partitions())
                - set(getattr(consumer, "_paused_partitions", ()))
                - paused
            )
        except Exception:
            log.debug("partition diagnosis unavailable", exc_info=True)
            return
        if unfetched:
            names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(unfetched))
            log.warning("assigned but not being fetched: %s", names)

    @app.page("/health")
    async def health_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """200 while the worker can do its work; 503 while it is waiting out an outage."""
        report = health.report(stalled())
        body = {**report, "pipeline": stats.summary(), "accounting": stats.accounting()}
        return view.json(body, status=503 if report["status"] == "unhealthy" else 200)

    def stalled() -> str | None:
        """Why ingest is stalled: events wait on this worker's partitions and no batch was
        done for LINEAGE_STALL_AFTER seconds."""
        idle_s = time.monotonic() - stats.last_batch_at
        if idle_s < settings.stall_after_s or app.rebalancing:
            return None
        waiting = sum(lag for topic, _, lag in consumer_lag() if topic == settings.topic)
        if not waiting:
            return None
        return f"{waiting} events wait and none was consumed for {idle_s:.0f} s"

    def consumer_lag() -> list[tuple[str, int, int]]:
        consumer = app.consumer
        lag = []
        for tp in sorted(consumer.assignment()):
            try:  # positions known once fetching started
                high = consumer.highwater(tp)
                read = consumer._read_offset.get(tp)  # private Faust state; diagnostic only
            except Exception:
                continue
            if high is not None:
                position = read + 1 if read is not None else 0
                lag.append((tp.topic, tp.partition, max(0, high - position)))
        return lag

    @app.page("/metrics")
    async def metrics_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Prometheus metrics of this worker (see lineage_faust/worker/metrics.py)."""
        native = native_bytes(rocksdb_databases(runs))
        text = stats.metrics.render(consumer_lag(), expiry.live_total(), native)
        # plain text/plain: aiohttp refuses parameters here, Prometheus reads it as 0.0.4
        return view.bytes(text, content_type="text/plain")

    @app.timer(interval=GROUP_CHECK_INTERVAL_S)
    async def check_group_coverage() -> None:
        """Every subscribed topic must have partitions assigned in the group (a leader that
        missed a topic in its metadata leaves it unassigned for good): if one has none, say
        so (/health 503, an ERROR naming it) and rejoin until the group is whole."""
        if app.rebalancing:
            return
        missing = await uncovered_topics(settings.bootstrap, settings.app_id)
        if missing is None:  # rebalancing, or the coordinator cannot say
            return
        if not missing:
            health.recovered("group assignment")
            return
        names = ", ".join(missing)
        health.failed("group assignment", RuntimeError(f"no partition assigned: {names}"))
        log.error("no partition of %s is assigned in group %s: rejoining", names, settings.app_id)
        await request_rejoin(app)

    @app.timer(interval=10.0)
    async def report() -> None:
        log.info("pipeline: %s", stats.summary())

    @app.timer(interval=HEAP_TRIM_INTERVAL_S)
    async def trim_heap() -> None:
        # in a thread: it takes milliseconds and ctypes releases the GIL (see heap.py)
        await asyncio.get_running_loop().run_in_executor(None, release_free_heap)

    return app
