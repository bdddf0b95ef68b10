"""Time to detect: a failure produced → its page received by a webhook, with and without
background traffic.

    python -m bench.detect [--rates 0 1000] [--failures 60]

Starts the embedded broker, a real worker with a webhook pointing at a receiver inside the
bench, and the API (as ``lineage-faust up`` does: it follows the live topic, on the same
cores). Background traffic (bench/workload.py) is produced at each rate while, every half
second, a run of its own (no parent: a root, so each one pages) is started and failed; the
delay is from just before the FAIL event is handed to the producer to the webhook's POST
arriving. Prints p50/p99/max per rate (also against ``LINEAGE_STORE=cassandra://…`` when set).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from bench.receiver import Receiver
from bench.report import Row, lineage_env, print_table, write_json
from bench.targets import StoreTarget, for_each_store
from bench.workload import workload
from lineage_faust.domain.keying import message_key
from lineage_faust.kafka.embedded import EmbeddedBroker, free_port, wait_for_port
from lineage_faust.kafka.topics import ensure_topics

TOPIC = "bench.detect"
PARTITIONS = 8
GOAL_P99_MS = 300.0
FAILURE_EVERY_S = 0.5


def failing_run(kind: str, run_id: str) -> bytes:
    return orjson.dumps(
        {
            "eventType": kind,
            "eventTime": datetime.now(UTC).isoformat(),
            "producer": "https://example.com/bench-detect",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id},
            "job": {"namespace": "bench-detect", "name": f"job-{run_id[:8]}"},
        }
    )


async def drive(bootstrap: str, rate: int, failures: int, receiver: Receiver) -> list[float]:
    seconds = failures * FAILURE_EVERY_S + 1
    background = list(workload(int(rate * seconds), seed=11)) if rate else []
    keys = [message_key(orjson.loads(v)) for v in background]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    sent_at: dict[str, float] = {}
    try:
        start = time.perf_counter()
        sent, fails = 0, 0
        while fails < failures:
            now = time.perf_counter() - start
            due = min(len(background), int(now * rate))
            for i in range(sent, due):
                await producer.send(TOPIC, background[i], key=keys[i])
            sent = due
            if now >= fails * FAILURE_EVERY_S:
                run_id = str(uuid.uuid4())
                await producer.send_and_wait(TOPIC, failing_run("START", run_id), key=b"x")
                sent_at[run_id] = time.perf_counter()
                await producer.send(TOPIC, failing_run("FAIL", run_id), key=b"x")
                fails += 1
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        with receiver.lock:
            if all(r in receiver.arrived for r in sent_at):
                break
        await asyncio.sleep(0.1)
    with receiver.lock:
        missing = [r for r in sent_at if r not in receiver.arrived]
        if missing:
            raise RuntimeError(f"{len(missing)} of {len(sent_at)} failures never paged")
        return sorted(receiver.arrived[r] - t for r, t in sent_at.items())


def measure(target: StoreTarget, rate: int, failures: int, tmp: Path) -> list[Row]:
    tmp.mkdir(parents=True, exist_ok=True)
    with Receiver() as receiver, EmbeddedBroker() as broker:
        asyncio.run(ensure_topics(broker.bootstrap, {TOPIC: PARTITIONS}))
        env = lineage_env(
            broker.bootstrap,
            TOPIC,
            **target.env(),
            LINEAGE_DATA_DIR=str(tmp),
            LINEAGE_APP_ID=f"bench-detect-{rate}",
            LINEAGE_PARTITIONS=str(PARTITIONS),
            LINEAGE_WEBHOOKS=receiver.url,
        )
        log = tmp / f"worker-{rate}.log"
        api_port = free_port()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "lineage_faust", name],
                env={**env, "LINEAGE_API_PORT": str(api_port)},
                stdout=(tmp / f"{name}-{rate}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for name in ("worker", "api")
        ]
        try:
            while b"Worker]: Ready" not in log.read_bytes():
                if procs[0].poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:])
                time.sleep(0.05)
            wait_for_port("127.0.0.1", api_port, 30)
            time.sleep(1.0)  # past the first fetches of a new group
            delays = asyncio.run(drive(broker.bootstrap, rate, failures, receiver))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
    ms = [d * 1000 for d in delays]
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    name = f"detect ({target.name}, {rate:,} ev/s background)"
    return [
        Row(f"{name}: FAIL to webhook, p50", statistics.median(ms), "ms"),
        Row(
            f"{name}: FAIL to webhook, p99",
            p99,
            "ms",
            goal=f"p99 <= {GOAL_P99_MS:.0f} ms at 1,000/s" if rate >= 1000 else "",
            met=(p99 <= GOAL_P99_MS) if rate >= 1000 and target.name == "SQLite" else None,
        ),
        Row(f"{name}: FAIL to webhook, max", ms[-1], "ms"),
    ]


def run(rates: list[int], failures: int) -> list[Row]:
    return for_each_store(
        lambda target, tmp: [
            row for rate in rates for row in measure(target, rate, failures, tmp / str(rate))
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[0, 1000])
    parser.add_argument("--failures", type=int, default=60)
    args = parser.parse_args()
    rows = run(args.rates, args.failures)
    print_table(rows)
    write_json("detect", rows, rates=args.rates, failures=args.failures)


if __name__ == "__main__":
    main()
