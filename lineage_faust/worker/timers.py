"""The worker's timers and its answers to rebalances.

Faust timers run on every worker, also during rebalances: work that writes the live table
is not done here but asked of the agent owning each partition (a sweep request message).
"""

from __future__ import annotations

import asyncio
import logging

import faust

from lineage_faust.faust_patches.consumer import (
    flow_paused,
    request_rejoin,
    resume_flow,
    unfetched,
)
from lineage_faust.worker.backpressure import EventsValve
from lineage_faust.worker.group_coverage import uncovered_topics
from lineage_faust.worker.heap import release_free_heap
from lineage_faust.worker.startup_logs import quiet_until_joined
from lineage_faust.worker.state import WorkerState
from lineage_faust.worker.topology import Topology
from lineage_faust.worker.track_runs import SWEEP

log = logging.getLogger(__name__)
HEAP_TRIM_INTERVAL_S = 5.0  # free C heap handed back to the OS (heap.py)
GROUP_CHECK_INTERVAL_S = 5.0  # every subscribed topic assigned in the group? (group_coverage)
STARVED_CHECK_INTERVAL_S = 5.0


def install(state: WorkerState, topics: Topology, valve: EventsValve) -> None:
    app, settings = topics.app, state.settings
    updates_name = topics.updates.get_topic_name()

    # often enough that a newly assigned partition is soon indexed (and counted in /metrics)
    @app.timer(interval=settings.sweep_interval_s)
    async def request_sweeps() -> None:
        if app.rebalancing:
            return
        for partition in range(settings.partitions):
            await topics.updates.send(value=SWEEP, partition=partition)

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
    async def forget(app: faust.App, revoked: set, **kwargs: object) -> None:
        valve.forget(revoked)
        for tp in revoked:
            state.next_offsets.pop(tp, None)
            if tp.topic == updates_name:
                state.updates_done.pop(tp.partition, None)
                state.index.forget(tp.partition)

    paused_before: set = set()

    @app.timer(interval=STARVED_CHECK_INTERVAL_S)
    async def resume_starved_partitions() -> None:
        # Faust stops fetching a partition while its stream queue is under pressure and
        # resumes it when the queue drains. If that resume were lost, the agent would starve
        # for good (upstream reports: "consumers slowly die"). A partition still paused at two
        # checks in a row is resumed here; if its queue really is still full, Faust pauses it
        # again on the next message.
        nonlocal paused_before
        paused = flow_paused(app)
        for tp in paused & paused_before:
            log.info("resuming fetch of %s[%d], paused since the last check", *tp)
            resume_flow(app, tp)
            state.stats.resumed_partitions += 1
        paused_before = paused - paused_before
        if app.rebalancing:
            return
        # diagnosis for a stalled stream: assigned partitions Faust neither fetches nor knows
        # to be paused (private Faust state: a diagnostic must never take the worker down)
        try:
            lost = unfetched(app, paused)
        except Exception:
            log.debug("partition diagnosis unavailable", exc_info=True)
            return
        if lost:
            names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(lost))
            log.warning("assigned but not being fetched: %s", names)

    @app.timer(interval=GROUP_CHECK_INTERVAL_S)
    async def check_group_coverage() -> None:
        """Every subscribed topic must have partitions assigned in the group (a leader that
        missed a topic in its metadata leaves it unassigned for good): if one has none, say
        so (/health 503, an ERROR naming it) and rejoin until the group is whole."""
        if app.rebalancing:
            return
        missing = await uncovered_topics(
            settings.bootstrap, settings.app_id, settings.kafka_security
        )
        if missing is None:  # rebalancing, or the coordinator cannot say
            return
        if not missing:
            state.health.recovered("group assignment")
            return
        names = ", ".join(missing)
        state.health.failed("group assignment", RuntimeError(f"no partition assigned: {names}"))
        log.error("no partition of %s is assigned in group %s: rejoining", names, settings.app_id)
        await request_rejoin(app)

    @app.timer(interval=10.0)
    async def report() -> None:
        log.info("pipeline: %s", state.stats.summary())

    @app.timer(interval=HEAP_TRIM_INTERVAL_S)
    async def trim_heap() -> None:
        # in a thread: it takes milliseconds and ctypes releases the GIL (see heap.py)
        await asyncio.get_running_loop().run_in_executor(None, release_free_heap)
