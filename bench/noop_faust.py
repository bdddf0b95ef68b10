"""Ceiling: a Faust agent that does nothing but count, over the same backlog.

    python -m bench.noop_faust BOOTSTRAP TOPIC N [--eager]

Prints the events/s between the first and the N-th event, then exits. Stock Faust (the
ceiling the goals name); with ``--eager``, with the worker's own Faust set-up (eager
delivery on its transport, lineage_faust/faust_patches/delivery.py; raw schema and lean monitor,
lineage_faust/faust_patches/lean.py), for comparison.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import faust


def main() -> None:
    bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    scheme, app_options, topic_options = "kafka", {}, {}
    if "--eager" in sys.argv[4:]:
        from lineage_faust.faust_patches.lean import LeanMonitor, RawSchema
        from lineage_faust.faust_patches.transport import SCHEME as scheme

        app_options, topic_options = {"Monitor": LeanMonitor}, {"schema": RawSchema()}
    app = faust.App(
        f"noop-{os.getpid()}",
        broker=f"{scheme}://{bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=5.0,
        key_serializer="raw",
        value_serializer="raw",
        **app_options,
    )
    source = app.topic(topic, **topic_options)
    state = {"seen": 0, "start": 0.0}

    @app.agent(source)
    async def count(stream: faust.StreamT) -> None:
        async for events in stream.take_events(500, within=0.05):
            if not state["seen"]:
                state["start"] = time.perf_counter()
            state["seen"] += len(events)
            if state["seen"] >= n:
                rate = state["seen"] / (time.perf_counter() - state["start"])
                print(f"RATE {rate:.0f}", flush=True)
                os._exit(0)

    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
