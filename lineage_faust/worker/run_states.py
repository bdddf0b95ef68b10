"""The run-state orchestration of track_runs: read a group's runs, fold their updates, store
statuses and alerts (grouped into incidents), write the live table, publish; sweep finished
and stuck runs, and (partition 0's owner) stale datasets.

No Faust here: the live table and the publishing are given (``LiveTable``, ``Publish``), so
this runs in unit tests on a dictionary and a list (``tests/unit/test_run_states.py``).
The store is the durable record and the live table a cache of it: a run that left the
table (retention), or whose table entry lags the store, is rebuilt from the store.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import orjson

from lineage_faust.domain import alerting
from lineage_faust.domain.alerting import APP_HEADER, Alert, alert_partition
from lineage_faust.domain.identity import run_partition
from lineage_faust.domain.incidents import job_subject
from lineage_faust.domain.lineage import Cause, Direction, Graph, Node, job_node, radius_summary
from lineage_faust.domain.live import live_change, live_messages
from lineage_faust.domain.model import ticks_to_datetime
from lineage_faust.domain.records import RunStatus, state_from_status, status_from_state
from lineage_faust.domain.runstate import (
    MAX_SEEN,
    RUNNING,
    RunState,
    RunUpdate,
    apply_update,
    is_expired,
)
from lineage_faust.failures import describe
from lineage_faust.store.lineage_walk import graph_around, likely_cause
from lineage_faust.store.queries import RunQuery
from lineage_faust.worker.freshness import DatasetWatch
from lineage_faust.worker.incidents import Incidents
from lineage_faust.worker.lifecycle import Completion, Lifecycle
from lineage_faust.worker.state import WorkerState

log = logging.getLogger(__name__)
BLAST_DEPTH = 10  # what a page's blast radius covers downstream, at most
BLAST_NODES = 200
BLAST_BUDGET_S = 0.1  # the longest a page waits for its blast radius
Changes = dict[int, list[tuple[bytes, bytes | None]]]  # partition -> (key, value or delete)


class LiveTable(Protocol):
    """The live run table, keyed by run id (bytes), values RunState JSON."""

    def read(self, source: Any, run_ids: Iterable[str]) -> dict[str, bytes | None]:
        """The entries of runs owned by the partition of ``source`` (a run-updates message
        or a sweep request)."""

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        """Every entry of this worker's partitions."""

    def write(self, changes: Changes) -> Awaitable[None]: ...


# (alert messages, live messages): each a list of Topic.send keyword arguments
Publish = Callable[[list[dict], list[dict]], Awaitable[None]]
# a page just raised, offered to the webhooks at once (their queues; nothing waits for it)
Page = Callable[[dict], None]
Part = tuple[Any, int, list[RunUpdate]]  # (source message, its partition, its run updates)


def notices_of(alerts: list[Alert], public_url: str = "") -> list[dict]:
    return [a.to_dict(public_url) for a in alerts]


def may_alert(state: RunState) -> bool:
    """A run whose state could (again) raise an alert."""
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


class RunStates:
    def __init__(
        self, state: WorkerState, table: LiveTable, publish: Publish, page: Page | None = None
    ) -> None:
        """``page``: offers a page to the webhooks (none configured: None)."""
        self.state = state
        self.table = table
        self.send = publish
        self.page = page
        # (namespace, job) -> (cached until, typical duration in ms or None: too few samples)
        self.typical: dict[tuple[str, str], tuple[float, int | None]] = {}
        self.incidents = Incidents(state)
        self.lifecycle = Lifecycle(state)
        self.datasets = DatasetWatch(state, lambda pending: self.publish_in_turn([], {}, pending))
        self._publishing: asyncio.Future | None = None  # the latest group's publishing

    # ---- folding updates --------------------------------------------------------------
    async def load(
        self, parts: list[Part]
    ) -> tuple[dict[str, RunState | None], dict[str, RunStatus], dict[str, str]]:
        """Each run's state: the live table entry, unless the store knows more."""
        w = self.state
        run_ids = list(dict.fromkeys(u.run_id for _, _, updates in parts for u in updates))
        stored = await w.retrying("read run statuses", partial(w.store.get_run_statuses, run_ids))
        states: dict[str, RunState | None] = {}
        in_table: dict[str, str] = {}  # run -> its state in the live table
        for source, _, updates in parts:
            wanted = [r for r in dict.fromkeys(u.run_id for u in updates) if r not in states]
            for run_id, raw in self.table.read(source, wanted).items():
                live = RunState.from_dict(orjson.loads(raw)) if raw else None
                if live is not None:
                    in_table[run_id] = live.state
                states[run_id] = live
        for run_id, status in stored.items():
            live = states[run_id]
            if live is None or status.event_count > live.event_count:
                seen = await w.retrying(
                    "read event ids", partial(w.store.recent_event_ids, run_id, MAX_SEEN)
                )
                count = await w.retrying("count events", partial(w.store.count_events, run_id))
                states[run_id] = state_from_status(status, seen, count)
                w.stats.runs_revived += 1
        return states, stored, in_table

    async def apply(self, parts: list[Part]) -> None:
        """``fold``, then wait for the group's publishing."""
        await (await self.fold(parts))

    async def fold(self, parts: list[Part]) -> asyncio.Future:
        """Fold a group of run-updates messages (any partitions) into the runs' states: the
        store read once, statuses and alerts written once, the broker awaited once. Returns
        the group's publishing (``publish_in_turn``): the next group may be folded meanwhile,
        and the group's messages are acknowledged once it is done."""
        w, rules = self.state, self.state.settings.alert_rules
        now = time.time()
        states, stored, in_table = await self.load(parts)
        before = {run_id: s.state if s else None for run_id, s in states.items()}
        changed: dict[str, RunState] = {}
        duplicates = 0
        for _, _, updates in parts:
            for update in updates:
                new, was_changed = apply_update(states[update.run_id], update, now)
                states[update.run_id] = new
                if was_changed:
                    changed[update.run_id] = new
                else:
                    duplicates += 1
        w.stats.redelivered_updates += duplicates
        # The store first (statuses, and alerts into its outbox), then the table: after a
        # crash in between, the redelivered message finds the table behind the store and the
        # run is rebuilt from the store (load). Every touched run is written, changed or not.
        # An unchanged run that could have raised an alert (a redelivery) is offered to the
        # outbox again: it returns what it still has to publish, so nothing is lost.
        candidates = [
            alert
            for state in states.values()
            if state is not None and (state.run_id in changed or may_alert(state))
            for alert in alerting.on_change(state, rules, now, again=True)
        ]
        candidates = await self.incidents.assign(candidates, states)
        candidates = await self.with_blast_radius(candidates, states)
        updated_at = datetime.now(UTC)
        statuses = [status_from_state(s, updated_at) for s in states.values() if s is not None]

        async def write_statuses(rows: Sequence[RunStatus]) -> None:
            with w.stats.metrics.store_write.labels("run_statuses").time():
                await w.store.write_run_statuses(rows, stored)

        # queued together: one wait behind the ingest writes, not two; statuses first, so an
        # alert anyone can see never names a run whose status is not stored yet
        _, pending = await asyncio.gather(
            w.store_rows("store run statuses", write_statuses, statuses),
            w.record_alerts(candidates),
        )
        remember_alerts(states, changed, candidates)
        w.stats.runs_updated += len(changed)
        moved = [s for run_id, s in changed.items() if s.state != before[run_id]]
        # per group, not per run: a labelled child's lookup is slow (~3 % of the loop per run)
        for state_name, n in collections.Counter(s.state for s in moved).items():
            w.stats.metrics.run_state_changes.labels(state_name).inc(n)
        writes: Changes = collections.defaultdict(list)
        for _, partition, updates in parts:  # each run's table entry lives in its partition
            for run_id in dict.fromkeys(u.run_id for u in updates):
                state = changed.pop(run_id, None)
                if state is not None:
                    writes[partition].append((run_id.encode(), orjson.dumps(state)))
                    self.note_change(partition, state, before[run_id], in_table)
        await self.table.write(writes)
        # every run of the group that succeeded, moved now or not (a redelivery after a crash
        # must still resolve what it recovers): resolves the incidents its job is failing in
        completions = [
            (job_subject(s.namespace, s.job), end)
            for s in states.values()
            if s is not None
            and s.state == "COMPLETE"
            and (end := ticks_to_datetime(s.end_ticks)) is not None
        ]
        return self.publish_in_turn(
            moved, before, pending, folded_from=now, completions=completions
        )

    def publish_in_turn(
        self,
        moved: list[RunState],
        before: Mapping[str, str | None],
        pending: list[Alert],
        folded_from: float | None = None,
        completions: Sequence[Completion] = (),
    ) -> asyncio.Future:
        """``publish`` once every earlier publishing is done (the alerts and live topics keep
        the order of the groups). Measured at 1,000 events/s: publishing waits p50 18 ms for
        the broker, time the next group's fold no longer queues behind.

        Pages go to the webhooks' queues now, not in turn: they need no order, nothing here
        waits for a receiver, and the way through the alerts topic and the notify agent cost
        a page p50 35 ms more. ``folded_from``: when the fold that raised them started."""
        previous = self._publishing
        alerts = [a.to_dict(self.state.settings.public_url) for a in pending]
        if self.page is not None:
            for alert in alerts:
                if alert["paged"]:
                    self.offer_page(alert, folded_from)

        async def in_turn() -> None:
            if previous is not None:  # done, however it ended (its awaiter sees its error)
                await asyncio.wait([previous])
            notices = await self.resolve_incidents(pending, completions)
            public = self.state.settings.public_url
            await self.publish(
                moved, before, pending + notices, alerts + notices_of(notices, public)
            )

        self._publishing = asyncio.ensure_future(in_turn())
        return self._publishing

    async def with_blast_radius(
        self, alerts: list[Alert], states: Mapping[str, RunState | None]
    ) -> list[Alert]:
        """A new failure's page names what the failed job feeds downstream and its likely
        upstream cause (read from the dataset tables within ``BLAST_BUDGET_S``; a page is not
        held longer for it)."""
        new = [
            i
            for i, a in enumerate(alerts)
            if a.paged
            and a.kind == alerting.Kind.FAILED
            and (s := states.get(a.run_id)) is not None
            and a.kind not in s.alerted
        ]
        if not new:
            return alerts

        store = self.state.store

        async def around(start: Node) -> tuple[Graph, Cause | None]:
            return await asyncio.gather(
                graph_around(store, start, Direction.DOWNSTREAM, BLAST_DEPTH, BLAST_NODES),
                likely_cause(store, start),
            )

        async def walked(alert: Alert) -> tuple[Node, Graph, Cause | None]:
            start = job_node(alert.namespace, alert.job)
            graph, cause = await around(start)
            run = states.get(alert.run_id)
            if graph.edges or run is None or not (run.parent_namespace and run.parent_job):
                return start, graph, cause
            # a run of a job with no datasets of its own (a dbt model's SQL statement, an
            # operator's sub-step): what its parent run's job feeds is what it puts at risk
            start = job_node(run.parent_namespace, run.parent_job)
            return start, *(await around(start))

        async def radius(alert: Alert) -> Alert:
            try:
                start, graph, cause = await asyncio.wait_for(walked(alert), BLAST_BUDGET_S)
            except Exception as exc:  # slow or failing store: the page goes without it
                log.warning("blast radius of %s not read (%s)", alert.alert_id, describe(exc))
                return alert
            return dataclasses.replace(alert, blast_radius=radius_summary(graph, [start], cause))

        found = await asyncio.gather(*(radius(alerts[i]) for i in new))
        out = list(alerts)
        for i, alert in zip(new, found, strict=True):
            out[i] = alert
        return out

    async def resolve_incidents(
        self, pending: list[Alert], completions: Sequence[Completion]
    ) -> list[Alert]:
        """Open and join incidents for the new alerts, resolve those whose jobs and datasets
        recovered: their resolve messages, recorded in the outbox and offered to the webhooks
        (in turn: an incident's page was offered before)."""
        w = self.state
        notices = await self.lifecycle.apply(pending, completions)
        if not notices:
            return []
        recorded = await w.record_alerts(notices)
        if self.page is not None:
            for alert in notices_of(recorded, w.settings.public_url):
                self.offer_page(alert, None)
        return recorded

    def offer_page(self, alert: dict, folded_from: float | None) -> None:
        assert self.page is not None
        try:
            self.page(alert)
        except Exception:  # never a reason to stop folding: the notify agent sends it
            log.exception("page %s not offered at once", alert["alertId"])
        if folded_from is not None:
            fold = self.state.stats.metrics.page_path.labels("fold")
            fold.observe(time.time() - folded_from)

    def note_change(
        self, partition: int, state: RunState, before: str | None, in_table: Mapping[str, str]
    ) -> None:
        """Keep the partition's index for a run written to the live table."""
        index, run_id = self.state.index, state.run_id
        if state.finished_at is not None:
            index.queues[partition].append((state.finished_at, run_id))
        if state.state != before and state.state == "COMPLETE":
            self.typical.pop((state.namespace, state.job), None)  # its typical duration moves
        live = index.live.get(partition)
        if live is not None:
            if run_id in in_table:
                live[in_table[run_id]] -= 1
            live[state.state] += 1
        running = index.running.get(partition)
        if running is not None:
            (running.discard if state.is_terminal else running.add)(run_id)

    async def publish(
        self,
        moved: list[RunState],
        before: Mapping[str, str | None],
        pending: list[Alert],
        alerts: list[dict],
    ) -> None:
        """Alerts the outbox still has to publish (then marked published), and the run state
        changes, to the alerts topic and the live topic the API streams from. ``alerts``: the
        pending alerts as published, each in its run's partition (this worker's: its notify
        agent reads it back) and marked with this deployment's app id."""
        if not moved and not pending:
            return
        w = self.state
        changes = [live_change(s, before.get(s.run_id)) for s in moved]
        app = [(APP_HEADER, w.settings.app_id.encode())]
        messages = [
            {
                "key": a.run_id.encode(),
                "value": orjson.dumps(alert),
                "partition": alert_partition(a, w.settings.partitions),
                "headers": app,
            }
            for a, alert in zip(pending, alerts, strict=True)
        ]
        live = [{"key": None, "value": value} for value in live_messages(changes, alerts)]
        await self.send(messages, live)
        if pending:
            ids = [a.alert_id for a in pending]
            await w.store_rows("mark alerts published", w.store.mark_alerts_published, ids)
            for a in pending:
                w.stats.metrics.alerts.labels(a.kind, str(a.paged).lower()).inc()
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

    # ---- sweeping ---------------------------------------------------------------------
    async def sweep(self, source: Any, partition: int, assigned: set[int]) -> None:
        """Drop finished runs older than the retention window from the live table, and look
        for stuck and overdue runs. ``assigned``: this worker's partitions (indexed together
        the first time: the pass over the table reads them all anyway)."""
        w, index = self.state, self.state.index
        retention = w.settings.run_retention_s
        now = time.time()
        if partition not in index.indexed:
            self.index_partitions((assigned | {partition}) - index.indexed)
        queue = index.queues[partition]
        due: list[str] = []
        while queue and now - queue[0][0] >= retention:
            due.append(queue.popleft()[1])
        removed: dict[bytes, None] = {}  # a run finished twice is queued twice
        for run_id, raw in self.table.read(source, dict.fromkeys(due)).items():
            if raw is None:
                continue
            state = RunState.from_dict(orjson.loads(raw))
            if is_expired(state, now, retention):
                removed[run_id.encode()] = None
                if partition in index.live:
                    index.live[partition][state.state] -= 1
        w.stats.runs_evicted += len(removed)
        await self.table.write({partition: list(removed.items())})
        if removed:
            log.info(
                "evicted %d finished runs from the live table (partition %d)",
                len(removed),
                partition,
            )
        await self.check_running(source, partition, now)
        if partition == 0:  # one worker judges the datasets: partition 0's owner
            await self.datasets.sweep()

    def index_partitions(self, partitions: set[int]) -> None:
        """Index partitions swept for the first time since start or assignment: one pass
        over the live table for all of them (a pass per partition cost 0.7 s of blocked event
        loop for 8 partitions at 1,000 events/s, and grows with the runs in flight)."""
        index, n = self.state.index, self.state.settings.partitions
        found: dict[int, list[tuple[float, str]]] = {p: [] for p in partitions}
        running_now: dict[int, set[str]] = {p: set() for p in partitions}
        counts: dict[int, collections.Counter[str]] = {p: collections.Counter() for p in partitions}
        for key, value in self.table.items():
            run_id = key.decode()
            partition = run_partition(run_id, n)
            if partition in partitions:
                data = orjson.loads(value)
                counts[partition][data["state"]] += 1
                if data.get("finished_at") is not None:
                    found[partition].append((data["finished_at"], run_id))
                else:
                    running_now[partition].add(run_id)
        for partition in partitions:
            index.queues[partition].extend(sorted(found[partition]))
            index.indexed.add(partition)
            index.live[partition] = counts[partition]
            index.running[partition] = running_now[partition]

    async def check_running(self, source: Any, partition: int, now: float) -> None:
        """Stuck and overdue runs of this partition."""
        running, rules = self.state.index.running, self.state.settings.alert_rules
        alerts: list[Alert] = []
        states: dict[str, RunState | None] = {}
        for run_id, raw in self.table.read(source, list(running.get(partition, ()))).items():
            state = RunState.from_dict(orjson.loads(raw)) if raw is not None else None
            if state is None or state.is_terminal:
                running[partition].discard(run_id)
                continue
            typical_ms = None
            if state.state == RUNNING:
                typical_ms = await self.typical_duration(state, now)
            # again: a condition already noted is offered to the outbox too, which returns
            # it only if a crash kept it from being published
            found = alerting.on_sweep(state, rules, now, typical_ms, again=True)
            if found:
                states[run_id] = state
                alerts.extend(found)
        if not alerts:
            return
        pending = await self.state.record_alerts(alerts)
        noted: dict[str, RunState] = {}
        remember_alerts(states, noted, alerts)
        writes = [(run_id.encode(), orjson.dumps(state)) for run_id, state in noted.items()]
        await self.table.write({partition: writes})
        await self.publish_in_turn([], {}, pending)

    async def typical_duration(self, state: RunState, now: float) -> int | None:
        """The job's median duration over its recent completed runs (the store's job history,
        cached for a minute, or until one of its runs completes)."""
        w = self.state
        key = (state.namespace, state.job)
        cached = self.typical.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        limits = w.settings.alert_rules.limits(*key)
        query = RunQuery(state="COMPLETE", namespace=key[0], job=key[1])
        page = await w.retrying("read job history", partial(w.store.list_runs, query, 20))
        durations = [r.duration_ms for r in page.runs if r.duration_ms is not None]
        value = alerting.typical_duration_ms(durations, limits.min_samples)
        if len(self.typical) > 10_000:
            self.typical.clear()
        self.typical[key] = (now + 60.0, value)
        return value
