"""Freshness: how long from produce until an event can be read through the API, at a steady rate.

    python -m bench.freshness [--rate 1000] [--seconds 20]

Starts the embedded broker, a worker and the API (real processes), produces the benchmark
workload (bench/workload.py) at a steady rate and, for one event in 100, polls the Atlas
events-by-run endpoint until that event is served. Prints p50/p99/max of the delay, the rate
achieved, and the worker's and API's peak RSS (VmHWM); writes bench-results/freshness.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.report import Row, lineage_env, peak_rss_mb, print_table, write_json
from bench.workload import workload
from lineage_faust.domain.keying import message_key
from lineage_faust.domain.model import ValidEvent, parse_event
from lineage_faust.kafka.embedded import EmbeddedBroker, free_port, wait_for_port
from lineage_faust.kafka.topics import ensure_topics

TOPIC = "bench.fresh"
PROBE_EVERY = 100  # few enough that polling does not load the API it measures
GOAL_P99_MS = 1000.0


async def probe(
    api: httpx.AsyncClient, run_id: str, event_id: str, sent: float, acked: asyncio.Future
) -> float:
    """Seconds from send until the event is served by the API (polled every 25 ms)."""
    await acked
    while True:
        response = await api.get(
            f"/api/atlas/v2/openlineage/runs/{run_id}", params={"pageSize": 100}
        )
        if response.is_success and any(
            e["eventId"] == event_id for e in response.json().get("events", [])
        ):
            return time.perf_counter() - sent
        await asyncio.sleep(0.025)


async def drive(bootstrap: str, api_url: str, rate: int, seconds: int) -> tuple[list[float], float]:
    values = list(workload(rate * seconds, seed=3))
    keys = [message_key(orjson.loads(v)) for v in values]
    probed = {i: probe_target(values[i]) for i in range(0, len(values), PROBE_EVERY)}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    probes: list[asyncio.Task] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        try:
            start = time.perf_counter()
            sent_count = 0
            while sent_count < len(values):  # every 5 ms, send what is due by then
                due = min(len(values), int((time.perf_counter() - start) * rate) + 1)
                for i in range(sent_count, due):
                    sent = time.perf_counter()
                    future = await producer.send(TOPIC, values[i], key=keys[i])
                    if i in probed:
                        run_id, event_id = probed[i]
                        probes.append(
                            asyncio.ensure_future(probe(api, run_id, event_id, sent, future))
                        )
                sent_count = due
                await asyncio.sleep(0.005)
            achieved = len(values) / (time.perf_counter() - start)
            delays = await asyncio.wait_for(asyncio.gather(*probes), 120)
        finally:
            await producer.stop()
    return list(delays), achieved


def probe_target(value: bytes) -> tuple[str, str]:
    """The run id and event id the API will show for this event."""
    parsed = parse_event(value, 1 << 20)
    assert isinstance(parsed, ValidEvent)
    return parsed.payload.run.runId, str(parsed.event_id)


def run(rate: int, seconds: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        asyncio.run(ensure_topics(broker.bootstrap, {TOPIC: 8}))
        port = free_port()
        env = lineage_env(
            broker.bootstrap,
            TOPIC,
            LINEAGE_DATA_DIR=tmp,
            LINEAGE_APP_ID="bench-fresh",
            LINEAGE_API_PORT=str(port),
        )
        logs = Path(tmp) / "logs"
        logs.mkdir()
        procs = {
            name: subprocess.Popen(
                [sys.executable, "-m", "lineage_faust", name],
                env=env,
                stdout=(logs / f"{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for name in ("worker", "api")
        }
        try:
            while b"Worker]: Ready" not in (logs / "worker.log").read_bytes():
                time.sleep(0.05)
            wait_for_port("127.0.0.1", port, 30)
            delays, achieved = asyncio.run(
                drive(broker.bootstrap, f"http://127.0.0.1:{port}", rate, seconds)
            )
            rss = {name: peak_rss_mb(p.pid) for name, p in procs.items()}
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(30)
    delays.sort()
    p99 = delays[int(0.99 * (len(delays) - 1))] * 1000
    return [
        Row("freshness: rate asked", rate, "events/s"),
        Row("freshness: rate produced", achieved, "events/s", rate, "asked"),
        Row("freshness: probes", len(delays), "events"),
        Row("freshness: produce to served, p50", statistics.median(delays) * 1000, "ms"),
        Row(
            "freshness: produce to served, p99",
            p99,
            "ms",
            goal=f"p99 <= {GOAL_P99_MS:.0f} ms at 1,000/s",
            met=p99 <= GOAL_P99_MS and rate >= 1000 and achieved >= 0.95 * rate,
        ),
        Row("freshness: produce to served, max", delays[-1] * 1000, "ms"),
        Row("freshness: worker peak RSS", rss["worker"], "MB"),
        Row("freshness: API peak RSS", rss["api"], "MB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    rows = run(args.rate, args.seconds)
    print_table(rows)
    write_json("freshness", rows, rate=args.rate, seconds=args.seconds)


if __name__ == "__main__":
    main()
