"""Freshness: how long from produce until an event can be read through the API, at a steady rate.

    python -m bench.freshness [--rate 1000] [--seconds 20]

Starts the embedded broker, a worker and the API (real processes), produces copies of the
Airflow samples at a steady rate and, for one event in 50, polls the Atlas single-event
endpoint until that event is served. Prints p50/p99/max of the delay, the rate achieved, and
the worker's and API's peak RSS (VmHWM), and writes bench-results/freshness.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from lineage_faust.broker import EmbeddedBroker, free_port, wait_for_port
from lineage_faust.keying import message_key
from lineage_faust.synth import fresh_copies, load_lines
from lineage_faust.topics import ensure_topics

TOPIC = "bench.fresh"
PROBE_EVERY = 50


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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
    lines = load_lines()
    copies = rate * seconds // len(lines) + 1
    values = [v for copy in fresh_copies(lines, copies, seed=3) for v in copy][: rate * seconds]
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
                    value = values[i]
                    event = orjson.loads(value)
                    sent = time.perf_counter()
                    future = await producer.send(TOPIC, value, key=message_key(event))
                    if i % PROBE_EVERY == 0:
                        event_id = await event_id_of(value)
                        run_id = event["run"]["runId"]
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


async def event_id_of(value: bytes) -> str:
    from lineage_faust.model import ValidEvent, parse_event

    parsed = parse_event(value, 1 << 20)
    assert isinstance(parsed, ValidEvent)
    return str(parsed.event_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        asyncio.run(ensure_topics(broker.bootstrap, {TOPIC: 8}))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_")}
        env.update(
            LINEAGE_KAFKA_BOOTSTRAP=broker.bootstrap,
            LINEAGE_EMBEDDED_BROKER="1",
            LINEAGE_TOPIC=TOPIC,
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
                drive(broker.bootstrap, f"http://127.0.0.1:{port}", args.rate, args.seconds)
            )
            rss = {name: peak_rss_mb(p.pid) for name, p in procs.items()}
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(30)
    delays.sort()
    figures = {
        "rate asked (events/s)": args.rate,
        "rate produced (events/s)": round(achieved),
        "probes": len(delays),
        "freshness p50 (ms)": round(statistics.median(delays) * 1000, 1),
        "freshness p99 (ms)": round(delays[int(0.99 * (len(delays) - 1))] * 1000, 1),
        "freshness max (ms)": round(delays[-1] * 1000, 1),
        "worker peak RSS (MB)": round(rss["worker"], 1),
        "API peak RSS (MB)": round(rss["api"], 1),
    }
    for name, value in figures.items():
        print(f"{name:28} {value:>10}")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "freshness.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
