"""A Faust worker on this project's transport whose stream queue is tiny and whose agent is
slow, so most deliveries have to wait for room (tests/test_delivery.py runs it).

    python -m tests.support.delivery_probe BOOTSTRAP TOPIC N

Prints one JSON line: the offsets the agent saw per partition, and how many deliveries
finished at once or had to wait; then exits.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import faust
import orjson

from lineage_faust.faust_patches import delivery
from lineage_faust.faust_patches.transport import EMBEDDED_SCHEME


def main() -> None:
    bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    counts = {"at_once": 0, "waited": 0}
    start_eagerly = delivery.start_eagerly

    def counting(coro):  # type: ignore[no-untyped-def]
        rest = start_eagerly(coro)
        counts["waited" if rest is not None else "at_once"] += 1
        return rest

    delivery.start_eagerly = counting
    app = faust.App(
        f"probe-{os.getpid()}",
        broker=f"{EMBEDDED_SCHEME}://{bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=5.0,
        stream_buffer_maxsize=8,
        key_serializer="raw",
        value_serializer="raw",
    )
    seen: dict[int, list[int]] = {}

    @app.agent(app.topic(topic))
    async def slow(stream: faust.StreamT) -> None:
        async for event in stream.events():
            seen.setdefault(event.message.partition, []).append(event.message.offset)
            await asyncio.sleep(0.001)
            if sum(map(len, seen.values())) >= n:
                report = {"seen": seen, **counts}
                print(orjson.dumps(report, option=orjson.OPT_NON_STR_KEYS).decode(), flush=True)
                os._exit(0)

    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
